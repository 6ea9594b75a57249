"""The shipped daemon reads no test switch (issue 15): hooks are injected, never read.

The test entry point tests/seald_under_test.py reads the SEALD_TEST_* variables and
injects a clock and hooks; the installed ``seald`` package must not know them, so no
systemd drop-in can move its clock or pause it on a production host.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import seald
from seald.runtime import daemon
from seald.runtime.hooks import NO_HOOKS, real_clock

PACKAGE = Path(seald.__file__).resolve().parent
# Environment variables the product reads, each for a documented reason.
ALLOWED_ENV = {
    "CREDENTIALS_DIRECTORY",  # systemd LoadCredential= (config.py, tls_key = "credential:...")
}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_installed_package_mentions_no_seald_test_variable() -> None:
    assert _sources(), f"no sources under {PACKAGE}"
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*")
        if path.is_file() and b"SEALD_TEST_" in path.read_bytes()
    ]
    assert offenders == []


def test_product_reads_only_documented_environment_variables() -> None:
    """``os.environ[...]`` / ``.get(...)`` / ``os.getenv(...)`` with a literal name: only the
    allowed ones (sdnotify takes its environment as an argument, see runtime/sdnotify.py)."""
    read = set()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = None
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                name = node.slice
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in {"os.environ.get", "os.getenv"}:
                name = node.args[0] if node.args else None
            if name is not None:
                read.add(name.value if isinstance(name, ast.Constant) else ast.unparse(name))
    assert read <= ALLOWED_ENV, read - ALLOWED_ENV


def test_the_shipped_entry_point_runs_without_hooks_and_on_real_time() -> None:
    params = inspect.signature(daemon.main).parameters
    assert params["hooks"].default is NO_HOOKS
    assert params["clock"].default is real_clock
    assert params["custody_interval_s"].default is None
