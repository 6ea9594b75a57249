"""The checked-in stubs are exactly what the pinned generators make from the .proto files."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "proto" / "sealapi" / "v1"


def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    generated = sorted(p.name for p in (tmp_path / "sealapi" / "v1").iterdir())
    expected = sorted(
        p.name for p in CHECKED_IN.iterdir() if p.name.endswith((".py", ".pyi")) and "_pb2" in p.name
    )
    assert generated == expected
    assert len(generated) == 4 * len(list(CHECKED_IN.glob("*.proto")))
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "sealapi" / "v1", CHECKED_IN, generated, shallow=False
    )
    assert mismatch == [] and errors == [], f"regenerate with scripts/gen_proto.py: {mismatch}"
