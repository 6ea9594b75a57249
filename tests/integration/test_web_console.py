"""The approvers' web console in a real browser (issue 18; R04, R05, R06, R10, R14).

seald and sealweb run as processes over TLS on loopback; Debian's headless Chromium,
with its virtual authenticator (a CTAP2 key with user verification), is the approver's
browser and security key. Screenshots of each page go to test-artifacts/web/.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_layout import SealFixtures, relocate_fixtures
from PIL import Image
from selenium.webdriver.common.by import By

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.evidence import load_trust, verify_package
from seald_testing.daemon import make_pdf, unlock_first_use
from seald_testing.web import WebStack

PLACEMENT = common_pb2.Placement(page=1, x_mm=150, y_mm=230)
# The page lays out its preview images once it knows the page count: none at first.
FIRST_PREVIEW_WIDTH = "return document.querySelector('img.preview')?.naturalWidth || 0"
SEALCTL = shutil.which("sealctl", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, seal_fixtures: SealFixtures) -> Iterator[WebStack]:
    work = tmp_path_factory.mktemp("web")
    fixtures = relocate_fixtures(seal_fixtures.root, work / "fixtures")
    s = WebStack(fixtures, work)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def submit(
    s: WebStack, tmp_path: Path, reason: str = "采购合同（华东区）", pages: int = 2
) -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / f"contract-{time.monotonic_ns()}.pdf", pages=pages)
    with s.daemon.client("zhang.wei") as requester:
        return requester.submit(
            [pdf], seal_id="contract", reason=reason, category="contract", placement=PLACEMENT
        )


@pytest.fixture(scope="module")
def signed_in(stack: WebStack) -> str:
    credential_id = stack.enrol_in_browser("li.na")
    stack.sign_in()
    return credential_id


def test_web_enrol_sign_in_approve_in_browser_then_sealctl_seals_and_evidence_verifies(
    stack: WebStack, signed_in: str, tmp_path: Path
) -> None:
    s = stack
    s.open("/")
    # live inbox: a request submitted now appears without a reload (SSE from seald's watch)
    request = submit(s, tmp_path)
    row = f'li.request-row[data-request="{request.request_id}"]'
    s.wait(lambda d: d.find_elements(By.CSS_SELECTOR, row), 30)
    s.screenshot("04-inbox")
    s.driver.find_element(By.CSS_SELECTOR, row + " a").click()
    s.wait(lambda d: d.find_elements(By.ID, "approve"), 30)
    assert s.text("#approval-digest") == request.approval_digest
    assert s.text(".doc-sha256") == request.documents[0].sha256
    assert s.text("#requester") == "zhang.wei"
    s.wait(lambda d: d.execute_script(FIRST_PREVIEW_WIDTH) > 0, 60)
    s.screenshot("05-request")
    s.driver.find_element(By.ID, "comment").send_keys("同意，金额已核对")
    s.driver.find_element(By.ID, "approve").click()
    status = s.status_is("已签署同意")
    assert "已签署同意" in status, status + s.log_tail()
    assert s.text("#state") == "待审批"  # 1 of 2: still pending
    challenge_shown = s.text("#challenge")
    s.screenshot("06-approved-in-browser")
    with s.daemon.client("zhang.wei") as requester:
        after = requester.get(request.request_id)
    (web_approval,) = after.approvals
    assert web_approval.approver == "li.na" and web_approval.comment == "同意，金额已核对"
    assert web_approval.webauthn_assertion
    # the page showed exactly what the key signed: SHA-256 of seald's statement, which names
    # the approval digest the page showed
    assert challenge_shown == hashlib.sha256(web_approval.statement).hexdigest()
    assert json.loads(web_approval.statement)["approval_digest"] == request.approval_digest
    with s.daemon.client("wang.fang") as wang:
        assert wang.approve(request.request_id).state == requests_pb2.REQUEST_STATE_APPROVED
    with s.daemon.client("liu.yang") as custodian:
        unlock_first_use(custodian, s.fixtures, "contract")
    sealed = tmp_path / "sealed.pdf"
    with s.daemon.client("zhang.wei") as requester:
        s.daemon.wait_state(requester, request.request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=60)
        requester.download(request.request_id, 0, sealed)
    with s.daemon.client("zhao.min") as auditor:
        package = auditor.evidence(request.request_id)
    trust = load_trust(
        [s.fixtures.tls_ca, s.fixtures.seal_ca, s.fixtures.state_dir / "audit" / "audit-cert.pem"]
    )
    verdict = verify_package(package, [sealed], trust)
    assert verdict.ok, verdict.as_dict()
    assert any(a.get("webauthn_assertion") for a in json.loads(package)["approvals"])
    s.open(f"/r/{request.request_id}")
    s.screenshot("07-request-signed")
    assert "已用印" in s.text("#state")


def test_web_preview_pixels_are_sealctl_preview_and_the_digest_is_shown(
    stack: WebStack, signed_in: str, tmp_path: Path
) -> None:
    s = stack
    request = submit(s, tmp_path, reason="预览比对")
    s.open(f"/r/{request.request_id}")
    s.wait(lambda d: d.execute_script(FIRST_PREVIEW_WIDTH) > 0, 60)
    shown = Image.open(io.BytesIO(s.fetch_bytes(f"/r/{request.request_id}/preview/0/1.png"))).convert("RGBA")
    assert SEALCTL is not None
    out = tmp_path / "previews"
    out.mkdir()
    done = subprocess.run(
        [
            SEALCTL,
            "--config",
            str(s.fixtures.principals["li.na"].config),
            "--server",
            s.daemon.target,
            "preview",
            request.request_id,
            "--out",
            str(out),
            "--dpi",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reference = Image.open(sorted(out.glob("*page1.png"))[0]).convert("RGBA")
    assert shown.size == reference.size and shown.tobytes() == reference.tobytes()
    # the seal is drawn: the preview has the seal's red where a blank page has none
    colours = shown.convert("RGB").getcolors(maxcolors=1 << 24) or []
    assert any(r > 150 and g < 80 and b < 80 for _, (r, g, b) in colours)
    natural = s.driver.execute_script("return document.querySelector('img.preview').naturalWidth")
    assert natural == shown.size[0]
    assert s.text("#approval-digest") == request.approval_digest


def _sealctl_preview(s: WebStack, request_id: str, out: Path, *extra: str) -> Path:
    assert SEALCTL is not None
    out.mkdir()
    done = subprocess.run(
        [
            SEALCTL,
            "--config",
            str(s.fixtures.principals["li.na"].config),
            "--server",
            s.daemon.target,
            "preview",
            request_id,
            "--out",
            str(out),
            "--dpi",
            "100",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (written,) = out.glob("*.png")
    return written


def _has_seal_red(image: Image.Image) -> bool:
    colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return any(r > 150 and g < 80 and b < 80 for _, (r, g, b) in colours)


def test_web_request_page_shows_every_page_lazily_with_the_seal_where_it_goes(
    stack: WebStack, signed_in: str, tmp_path: Path
) -> None:
    """A 6-page document (more than one PreviewRequest chunk): one image per page, each
    loaded when scrolled to; a page without the seal is `sealctl preview --first-page` of it."""
    s = stack
    request = submit(s, tmp_path, reason="全部页面预览", pages=6)
    s.open(f"/r/{request.request_id}")
    s.wait(lambda d: d.execute_script("return document.querySelectorAll('img.preview').length") == 6, 60)
    pages = s.driver.execute_script(
        "return [...document.querySelectorAll('img.preview')].map(i => i.dataset.page)"
    )
    assert pages == ["1", "2", "3", "4", "5", "6"]
    for page in range(1, 7):
        s.driver.execute_script(
            "document.querySelector(`img.preview[data-page='${arguments[0]}']`).scrollIntoView()", page
        )
        s.wait(
            lambda d, p=page: d.execute_script(
                "const i = document.querySelector(`img.preview[data-page='${arguments[0]}']`);"
                "return i.complete && i.naturalWidth > 0",
                p,
            ),
            60,
        )
    s.screenshot("10-request-every-page")
    base = f"/r/{request.request_id}/preview/0/"
    shown = {p: Image.open(io.BytesIO(s.fetch_bytes(f"{base}{p}.png"))).convert("RGBA") for p in (1, 5)}
    # the seal is drawn on page 1 (where it goes) and not on page 5
    assert _has_seal_red(shown[1]) and not _has_seal_red(shown[5])
    reference = Image.open(
        _sealctl_preview(s, request.request_id, tmp_path / "p5", "--first-page", "5", "--page-count", "1")
    ).convert("RGBA")
    assert shown[5].size == reference.size and shown[5].tobytes() == reference.tobytes()
    natural = s.driver.execute_script(
        "return document.querySelector(\"img.preview[data-page='5']\").naturalWidth"
    )
    assert natural == reference.size[0]


def test_web_reason_with_markup_is_rendered_as_text(stack: WebStack, signed_in: str, tmp_path: Path) -> None:
    s = stack
    reason = '<img src=x id=injected><b id="bold">粗体</b><script>alert(1)</script>'
    request = submit(s, tmp_path, reason=reason)
    s.open(f"/r/{request.request_id}")
    assert s.text("#reason") == reason
    assert s.driver.find_elements(By.ID, "injected") == [] and s.driver.find_elements(By.ID, "bold") == []
    s.open("/")
    assert reason in s.driver.page_source.replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", '"')
    assert s.driver.find_elements(By.ID, "bold") == []
    s.screenshot("08-markup-as-text")


def test_web_csrf_attempt_is_refused(stack: WebStack, signed_in: str, tmp_path: Path) -> None:
    s = stack
    request = submit(s, tmp_path, reason="CSRF 测试")
    s.open(f"/r/{request.request_id}")
    form = "application/x-www-form-urlencoded"
    # same session cookie, no CSRF token (what a forged cross-site form could send)
    status, body = s.post_from_page(
        f"/r/{request.request_id}/reject", "comment=forged", {"Content-Type": form}
    )
    assert status == 403, body
    status, body = s.post_from_page(
        f"/r/{request.request_id}/reject", "comment=forged&csrf=guess", {"Content-Type": form}
    )
    assert status == 403
    status, body = s.post_from_page(
        f"/api/r/{request.request_id}/approve/begin", "{}", {"Content-Type": "application/json"}
    )
    assert status == 403
    with s.daemon.client("zhang.wei") as requester:
        assert requester.get(request.request_id).state == requests_pb2.REQUEST_STATE_PENDING
    # the page's own form (with its token) works: the refusal above was the token's doing
    s.driver.find_element(By.ID, "comment").send_keys("金额不对")
    s.driver.find_element(By.ID, "reject").click()
    try:
        s.wait(lambda d: "已驳回" in d.find_element(By.ID, "state").text, 30)
    except Exception as ex:
        raise AssertionError(s.driver.current_url + s.driver.page_source[-3000:]) from ex
    s.screenshot("09-rejected")


def test_web_security_headers_and_cookie_flags(stack: WebStack, signed_in: str) -> None:
    s = stack
    import ssl  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    context = ssl.create_default_context(cafile=str(s.fixtures.tls_ca))
    with urllib.request.urlopen(s.origin + "/signin", context=context, timeout=30) as reply:
        headers = reply.headers
        cookie = headers["Set-Cookie"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    for flag in ("Secure", "HttpOnly", "SameSite=Strict"):
        assert flag in cookie
    # errors name no internals
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(s.origin + "/r/../../etc/passwd", context=context, timeout=30)
    assert "Traceback" not in missing.value.read().decode()
    s.open("/mine")
    s.screenshot("10-mine")
    s.open("/?lang=en")
    assert "Waiting for me" in s.driver.page_source
    s.screenshot("11-inbox-english")
    s.open("/?lang=zh")
