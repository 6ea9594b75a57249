"""Signing layer: seal images, placement, input checks, PAdES sealing on a PKCS#11
token and validation (pyHanko). Blocking; call from worker threads."""

from .errors import InputDocumentError, SealImageError, SigningError, TokenSigningError
from .input_checks import PdfFacts, check_input_pdf
from .pades import SealResult, SealSpec, seal_pdf, token_signer
from .placement import PlacementSpec, placement_box
from .seal_image import SealImageSpec, render_seal_png
from .verify import SignatureCheck, verify_pdf

__all__ = [
    "InputDocumentError",
    "PdfFacts",
    "PlacementSpec",
    "SealImageError",
    "SealImageSpec",
    "SealResult",
    "SealSpec",
    "SignatureCheck",
    "SigningError",
    "TokenSigningError",
    "check_input_pdf",
    "placement_box",
    "render_seal_png",
    "seal_pdf",
    "token_signer",
    "verify_pdf",
]
