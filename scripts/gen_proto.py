"""Regenerate the checked-in Python stubs of proto/sealapi/v1/*.proto.

Usage: python scripts/gen_proto.py [OUT_DIR]   (default: proto/, i.e. in place)

The versions of grpcio-tools and mypy-protobuf are pinned in pyproject.toml so
that regenerating changes nothing (tests/unit/test_proto_stubs.py proves it).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    plugin = shutil.which("protoc-gen-mypy_grpc", path=str(Path(sys.executable).parent))
    if plugin is None:
        raise SystemExit("protoc-gen-mypy_grpc not found next to python: pip install -e '.[test]'")
    include = Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.glob("sealapi/v1/*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy_grpc={plugin}",
        f"--mypy_grpc_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed: see the messages above")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_DIR)
