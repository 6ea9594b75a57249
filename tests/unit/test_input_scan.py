"""The input checks' chunked byte scan (issue 8: large files in bounded memory).

check_input_pdf reads the file in 1 MiB chunks: one pass computes the SHA-256 and looks
for /JS or /JavaScript names outside stream data. Image and content bytes are data: in a
large image-heavy file "/JS" occurs there by chance, and must not refuse the document.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from make_pdfs import _with_xref

from seald.signing.errors import InputDocumentError
from seald.signing.input_checks import _SCAN_CHUNK, _scan_bytes, check_input_bytes, check_input_pdf


def _pdf_with_image(image: bytes, extra_dict: bytes = b"") -> bytes:
    objects = [
        b"%PDF-1.7\n",
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
        b"2 0 obj\n<< /Type /Pages /Count 1 /Kids [3 0 R] >>\nendobj\n",
        b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] "
        b"/Resources << /XObject << /Im0 4 0 R >> >> %s>>\nendobj\n" % extra_dict,
        b"4 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height 1 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length %d >>\nstream\n%s\nendstream\nendobj\n"
        % (len(image), len(image), image),
    ]
    return _with_xref(objects, root=1)


def test_js_bytes_inside_image_data_do_not_refuse_the_document() -> None:
    image = b"\x00" * 100 + b"/JS " + b"\x01" * 100 + b"/JavaScript\x00"
    data = _pdf_with_image(image)
    facts = check_input_bytes(data)
    assert not facts.has_javascript
    assert facts.sha256 == hashlib.sha256(data).hexdigest()


def test_js_name_in_a_dictionary_is_still_found() -> None:
    data = _pdf_with_image(b"\x00" * 64, extra_dict=b"/AA << /O << /S /JavaScript /JS (x) >> >> ")
    with pytest.raises(InputDocumentError) as info:
        check_input_bytes(data)
    assert info.value.reason == "javascript"


def test_js_in_an_uncompressed_object_stream_is_found() -> None:
    body = b"1 0 obj << /S /JavaScript /JS (app.alert(1)) >> endobj"
    data = b"5 0 obj\n<< /Type /ObjStm /N 1 /First 0 /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (
        len(body),
        body,
    )
    assert _scan_bytes(io.BytesIO(data))[1]


def test_js_name_straddling_a_chunk_boundary_is_found() -> None:
    head = b"%PDF-1.7\n" + b" " * (_SCAN_CHUNK - 9 - 5)  # "/JavaScript" starts 5 bytes before the end
    data = head + b"/JavaScript (x)\n%%EOF\n"
    sha, found = _scan_bytes(io.BytesIO(data))
    assert found
    assert sha == hashlib.sha256(data).hexdigest()


def test_endstream_straddling_a_chunk_boundary_ends_the_stream() -> None:
    # The stream's "endstream" is split over the chunk boundary; the /JS after it counts.
    prefix = b"1 0 obj\n<< /Length 1 >>\nstream\n"
    pad = b"\x00" * (_SCAN_CHUNK - len(prefix) - 4)
    data = prefix + pad + b"endstream\nendobj\n2 0 obj\n<< /JS (x) >>\nendobj\n"
    assert _scan_bytes(io.BytesIO(data))[1]


def test_oversize_is_refused_from_the_file_size_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.pdf"
    path.write_bytes(_pdf_with_image(b"\x00" * 1000))
    with pytest.raises(InputDocumentError) as info:
        check_input_pdf(path, max_bytes=100)
    assert info.value.reason == "too_large"
