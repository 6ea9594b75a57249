"""seald.domain is the pure core: it must not import any I/O library (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "daemon" / "seald" / "domain"
FORBIDDEN = {"grpc", "sqlite3", "pkcs11", "pyudev", "pyhanko", "socket", "subprocess", "asyncio"}


def test_domain_imports_no_io_library() -> None:
    offenders = []
    for path in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
            outside = [n for n in names if n.startswith("seald.") and not n.startswith("seald.domain")]
            offenders += [f"{path.name}: {n}" for n in outside]
    assert offenders == []
