"""Which shape a seal's image may take (SEAL-RULES R01): pure rules shared by the config
loader and the image renderer.

Round for organisation seals, square for people's seals (personal, legal
representative); an oval only for the finance seal (many 财务专用章 are oval).
"""

from __future__ import annotations

SEAL_SHAPES = ("round", "oval", "square")
SQUARE_SEAL_TYPES = frozenset({"personal", "legal_representative"})
OVAL_SEAL_TYPES = frozenset({"finance"})


def default_shape(seal_type: str) -> str:
    return "square" if seal_type in SQUARE_SEAL_TYPES else "round"


def allowed_shapes(seal_type: str) -> tuple[str, ...]:
    """Shapes a seal type may take: people's seals are square, the official seal round."""
    if seal_type in SQUARE_SEAL_TYPES:
        return ("square",)
    if seal_type in OVAL_SEAL_TYPES:
        return ("round", "oval")
    return ("round",)
