"""The fixed outside baseline (issue 20): the loop a user writes from pyHanko's docs.

pyHanko's library guide ("Signing PDF files": PKCS#11 signing, and signing with a
visible stamp appearance) shows: open a PKCS#11 session (``open_pkcs11_session``),
make a ``PKCS11Signer`` from it, then for a document an ``IncrementalPdfFileWriter``,
``PdfSignatureMetadata`` and a ``PdfSigner`` with a stamp style whose background is an
image (``images.PdfImage``) and a new field spec for the box, and ``sign_pdf``. This
module runs exactly that, one document after another on one token session, with the
seal image as the stamp background. Nothing of seald is imported here: none of our
optimisations (cached seal XObject, pre-encoded CMS attributes, worker processes)
may reach it, so it stays a fixed yardstick while seald changes.

Charitable to pyHanko where a user might not be: the session, the signer and the
stamp style are made once, outside the loop; PAdES subfilter and SHA-256 as seald.
"""

from __future__ import annotations

import io
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from pyhanko import stamp
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils import images
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

# seald's default placement in the benches: page 1, centre (150 mm, 240 mm), 40 mm.
MM = 72 / 25.4
BOX = (
    round((150 - 20) * MM),
    round((297 - 240 - 20) * MM),
    round((150 + 20) * MM),
    round((297 - 240 + 20) * MM),
)


@dataclass(frozen=True)
class LoopResult:
    documents: int
    wall_s: float
    cpu_s: float  # this process's user + system CPU (resource.getrusage)

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.wall_s

    @property
    def cpu_ms_per_doc(self) -> float:
        return self.cpu_s / self.documents * 1000


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def documented_pyhanko_loop(
    module: Path,
    token_label: str,
    pin: str,
    key_label: str,
    seal_png: bytes,
    sources: list[Path],
    out_dir: Path,
) -> LoopResult:
    """Seal every source into ``out_dir`` the way pyHanko's documentation shows."""
    criteria = TokenCriteria(label=token_label)
    with open_pkcs11_session(str(module), token_criteria=criteria, user_pin=pin) as session:
        signer = PKCS11Signer(session, cert_label=key_label, key_label=key_label)
        style = stamp.TextStampStyle(
            stamp_text="",
            border_width=0,
            background=images.PdfImage(Image.open(io.BytesIO(seal_png))),
            background_opacity=1.0,
        )
        started, cpu_started = time.perf_counter(), _cpu_s()
        for i, source in enumerate(sources):
            with source.open("rb") as inf:
                writer = IncrementalPdfFileWriter(inf)
                meta = signers.PdfSignatureMetadata(
                    field_name=f"Seal-{i}", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
                )
                pdf_signer = signers.PdfSigner(
                    meta,
                    signer=signer,
                    stamp_style=style,
                    new_field_spec=fields.SigFieldSpec(f"Seal-{i}", box=BOX, on_page=0),
                )
                with (out_dir / f"documented-{i}.pdf").open("wb") as outf:
                    pdf_signer.sign_pdf(writer, output=outf)
        return LoopResult(len(sources), time.perf_counter() - started, _cpu_s() - cpu_started)
