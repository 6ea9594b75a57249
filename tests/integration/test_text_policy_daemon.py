"""Issue 14 items 4 and 5 over the REAL seald: one text policy for every human-readable
field a client sends, base names only for documents, and `sealctl` escaping whatever a
server sends before it reaches a terminal.

Each refusal is INVALID_ARGUMENT with the field named in the reason (`bad_<field>`), and
nothing changed: the request keeps its state and approvals, the seal its name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.client import SealClient
from sealclient.errors import SealClientError
from seald_testing.clients import sealctl, submit, tamper_stored_description
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.plugin import DaemonFactory

PENDING = requests_pb2.REQUEST_STATE_PENDING
PLACEMENT = common_pb2.Placement(page=1, x_mm=150, y_mm=230)

# What the audit sent: a terminal escape (set the window title), CSI as one C1 byte,
# DEL, a right-to-left override, an isolate, a line separator.
ESC = "\x1b]0;owned\x07"
CSI_C1 = "\x9b31m"
DEL = "ok\x7f"
RLO = "pay \u202etxt.exe"
ISOLATE = "\u2066hidden\u2069"
LINE_SEP = "one\u2028two"


@pytest.fixture(scope="module")
def daemon(module_daemon_factory: DaemonFactory) -> SealDaemon:
    """One daemon for the module: each test submits its own request."""
    return module_daemon_factory()


def refused(call: Callable[[], object], reason: str) -> SealClientError:
    with pytest.raises(SealClientError) as caught:
        call()
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert caught.value.reason == reason, caught.value
    return caught.value


def raw_submit(
    client: SealClient, pdf: Path, *, name: str, reason: str = "签署采购合同",
    category: str = "contract", anchor_text: str = "",
) -> requests_pb2.SealRequest:
    """SubmitRequest with a document name of our choosing (the client library sends the
    local file's base name; an attacker's client sends anything)."""
    data = pdf.read_bytes()
    placement = common_pb2.Placement()
    placement.CopyFrom(PLACEMENT)
    placement.anchor_text = anchor_text
    header = requests_pb2.SubmitRequestHeader(
        seal_id="contract", reason=reason, category=category, placement=placement
    )

    def messages() -> Iterator[requests_pb2.SubmitRequestMessage]:
        yield requests_pb2.SubmitRequestMessage(header=header)
        start = requests_pb2.DocumentStart(
            name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
        yield requests_pb2.SubmitRequestMessage(document_start=start)
        yield requests_pb2.SubmitRequestMessage(chunk=data)

    with client._translated():
        return client._requests.SubmitRequest(messages(), timeout=30)


@pytest.mark.parametrize(
    "name",
    [
        "../../../tmp/x.pdf",
        "/tmp/x.pdf",
        "dir/x.pdf",
        "C:\\Users\\x.pdf",
        "..\\x.pdf",
        "..",
        ".",
        "..x.pdf",
        "x\x00.pdf",
        "",
    ],
)
def test_document_name_must_be_a_base_name(daemon: SealDaemon, tmp_path: Path, name: str) -> None:
    pdf = make_pdf(tmp_path / "a.pdf")
    reason = "missing_document_name" if not name else "bad_document_name"
    with daemon.client("zhang.wei") as client:
        before = len(client.list())
        error = refused(lambda: raw_submit(client, pdf, name=name), reason)
        assert "document_name" in error.message
        assert len(client.list()) == before  # nothing stored


def test_a_plain_cjk_base_name_is_accepted(daemon: SealDaemon, tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "a.pdf")
    with daemon.client("zhang.wei") as client:
        request = raw_submit(client, pdf, name="采购合同 v2.pdf", reason="签署　采购合同")
    assert request.state == PENDING and request.documents[0].name == "采购合同 v2.pdf"


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("reason", {"reason": ESC}),
        ("reason", {"reason": RLO}),
        ("reason", {"reason": "tab\there"}),
        ("category", {"category": "contract" + CSI_C1}),
        ("anchor_text", {"anchor_text": ISOLATE}),
    ],
)
def test_submit_text_fields_follow_the_text_policy(
    daemon: SealDaemon, tmp_path: Path, field: str, kwargs: dict[str, str]
) -> None:
    pdf = make_pdf(tmp_path / "a.pdf")
    with daemon.client("zhang.wei") as client:
        error = refused(lambda: raw_submit(client, pdf, name="a.pdf", **kwargs), f"bad_{field}")
    assert f"{field} contains U+" in error.message


def test_comments_follow_the_text_policy_on_every_rpc(daemon: SealDaemon, tmp_path: Path) -> None:
    """approve, withdraw, reject and cancel comments: the audit found only reject checked,
    and a cancel comment reaching approvers' terminals through the state text."""
    request = submit(daemon, tmp_path)
    rid = request.request_id
    with daemon.client("li.na") as li, daemon.client("zhang.wei") as zhang:
        refused(lambda: li.approve(rid, comment=DEL), "bad_comment")
        refused(lambda: li.approve(rid, comment=RLO), "bad_comment")
        assert len(li.get(rid).approvals) == 0
        li.approve(rid, comment="看过，同意")
        refused(lambda: li.withdraw(rid, comment=CSI_C1), "bad_comment")
        assert len(li.get(rid).approvals) == 1  # the refused withdrawal withdrew nothing
        refused(lambda: li.reject(rid, comment=LINE_SEP), "bad_comment")
        refused(lambda: zhang.cancel(rid, comment=ESC), "bad_comment")
        after = zhang.get(rid)
    assert after.state == PENDING and ESC not in after.state_reason


def test_seal_and_custody_texts_follow_the_text_policy(daemon: SealDaemon) -> None:
    with daemon.client("chen.jie") as admin:
        name_before = admin.get_seal("contract").display_name
        refused(lambda: admin.change_seal("contract", display_name="合同章" + RLO), "bad_display_name")
        refused(
            lambda: admin.change_seal("contract", display_name="合同章", comment=ESC), "bad_comment"
        )
        refused(lambda: admin.seal_lifecycle("suspend", "contract", comment=CSI_C1), "bad_comment")
        refused(
            lambda: admin.propose_custody_change("contract", "liu.yang", comment=ISOLATE),
            "bad_comment",
        )
        seal = admin.get_seal("contract")
    assert seal.display_name == name_before
    assert seal.status == common_pb2.SEAL_STATUS_ACTIVE


MALICIOUS_STATE = f"cancelled by zhang.wei: {ESC}{CSI_C1}{RLO}\nState      SIGNED"


def test_sealctl_escapes_what_the_server_sent(daemon: SealDaemon, tmp_path: Path) -> None:
    """A state text with escapes and a fake line, as an older or compromised daemon could
    send it (written into the daemon's own database), reaches the approver's terminal
    escaped, and --json carries the same text as \\u escapes that decode back to it."""
    request = submit(daemon, tmp_path)
    tamper_stored_description(daemon, request.request_id, state_reason=MALICIOUS_STATE, reason=RLO)
    done = sealctl(daemon, "li.na", "status", request.request_id)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\x7f"):
        assert raw not in out, f"raw {raw!r} reached the terminal:\n{out!r}"
    assert "\\x1b]0;owned\\x07\\x9b31m" in out
    assert "\\u202etxt.exe" in out
    assert not any(line.startswith("State      SIGNED") for line in out.splitlines())
    assert "\\x0aState      SIGNED" in out

    listed = sealctl(daemon, "li.na", "list")
    assert listed.returncode == 0, listed.stderr
    assert "\u202e" not in listed.stdout and "\\u202e" in listed.stdout

    as_json = sealctl(daemon, "li.na", "--json", "status", request.request_id)
    assert as_json.returncode == 0, as_json.stderr
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in as_json.stdout
    assert json.loads(as_json.stdout)["state_reason"] == MALICIOUS_STATE
