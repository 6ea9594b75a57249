"""Writes a small Chinese purchase contract PDF for the demo (2 pages, "（盖章）" on the last)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "assets"))

from make_pdfs import valid_pdf


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "contract.pdf")
    out.write_bytes(valid_pdf(2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
