"""The fixture contract seal's image, rendered once per test process (~1 s of CPU each)."""

from __future__ import annotations

import functools

from seald.signing.seal_image import SealImageSpec, render_seal_png

CONTRACT_SEAL = SealImageSpec("contract", "华夏示例科技有限公司", "合同专用章")


@functools.cache
def contract_seal_png(size_mm: float = 40.0, dpi: int = 300) -> bytes:
    return render_seal_png(CONTRACT_SEAL, size_mm, dpi)
