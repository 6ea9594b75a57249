"""Issue 14 item 2 over the REAL seald: SubmitRequest refuses active content and
unsigned incremental updates with INVALID_ARGUMENT naming the object, and stores nothing.

The documents are the attack-named corpus of tests/assets/make_pdfs.py, uploaded under
their attack's name. The last test seals a document, changes the sealed file with a later
incremental update (the shadow attack on a signed document) and submits that.
"""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import make_pdfs
import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from sealapi.v1 import requests_pb2
from sealclient.errors import SealClientError
from seald_testing.clients import (
    PLACEMENT,
    approve_twice_and_unlock,
    submit,
    wait_signed,
)
from seald_testing.daemon import SealDaemon
from seald_testing.plugin import DaemonFactory

ACTIVE = make_pdfs.active_content_corpus()
SHADOW = make_pdfs.shadow_corpus()


@pytest.fixture(scope="module")
def daemon(module_daemon_factory: DaemonFactory) -> SealDaemon:
    """One daemon for the module: each test submits its own request."""
    return module_daemon_factory()


def submit_file(daemon: SealDaemon, path: Path) -> requests_pb2.SealRequest:
    with daemon.client("zhang.wei") as client:
        return client.submit(
            [path], seal_id="contract", reason="审核输入", category="contract", placement=PLACEMENT
        )


def refused(daemon: SealDaemon, path: Path, reason: str) -> str:
    with daemon.client("zhang.wei") as client:
        before = len(client.list())
    with pytest.raises(SealClientError) as caught:
        submit_file(daemon, path)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert caught.value.reason == reason, caught.value
    with daemon.client("zhang.wei") as client:
        assert len(client.list()) == before  # nothing stored
    return caught.value.message


@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_active_content_is_refused_at_submit_naming_the_object(
    daemon: SealDaemon, tmp_path: Path, name: str
) -> None:
    blob, named = ACTIVE[name]
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(blob)
    message = refused(daemon, path, "active_content")
    assert message.startswith(f"{name}.pdf: ") and "(object " in message and named in message, message


@pytest.mark.parametrize("name", sorted(SHADOW))
def test_unsigned_incremental_update_is_refused_at_submit(
    daemon: SealDaemon, tmp_path: Path, name: str
) -> None:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(SHADOW[name])
    message = refused(daemon, path, "incremental_update")
    assert "revision 1 changes object " in message and "shadow attack" in message


def test_an_ordinary_link_is_accepted(daemon: SealDaemon, tmp_path: Path) -> None:
    path = tmp_path / "uri-link.pdf"
    path.write_bytes(make_pdfs.uri_link_pdf())
    assert submit_file(daemon, path).state == requests_pb2.REQUEST_STATE_PENDING


def _replace_page_text(sealed: bytes) -> bytes:
    """shadow-replace on a SIGNED document: an update after the seal swaps the page text."""
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    other = b"BT /Helv 14 Tf 72 760 Td (Contract amount: 1,000,000 CNY) Tj ET\n"
    page[generic.pdf_name("/Contents")] = writer.add_object(generic.StreamObject(stream_data=other))
    writer.mark_update(page_ref.reference)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_shadow_replace_after_a_signature_is_refused_and_the_signed_file_accepted(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = submit(daemon, tmp_path, name="合同.pdf")
    approve_twice_and_unlock(daemon, request.request_id)
    wait_signed(daemon, request.request_id)
    sealed = tmp_path / "sealed.pdf"
    with daemon.client("zhang.wei") as client:
        client.download(request.request_id, 0, sealed)
    # Sealing a document that already carries a seal (a counter-seal) stays possible.
    assert submit_file(daemon, sealed).state == requests_pb2.REQUEST_STATE_PENDING

    changed = tmp_path / "shadow-replace-after-signature.pdf"
    changed.write_bytes(_replace_page_text(sealed.read_bytes()))
    message = refused(daemon, changed, "incremental_update")
    assert "after its last signature" in message and "changes object " in message
