"""The reason registry (seald.domain.reasons) is complete, consistent and documented.

- every reason the code uses (daemon and sealctl) is registered: an AST scan of
  ``reason=...`` keywords, ``default_reason``, the reason argument of sealctl's local
  errors, constants compared with ``.reason`` and what functions that compute a reason
  return; an f-string reason must match at least one registered reason;
- a raise site's error class answers the status registered for its reason;
- sealctl's exit code for each reason is what the registry says;
- docs/reasons.md is what scripts/gen_reasons.py writes.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

import seald
from sealclient.errors import SealClientError
from sealclient.exitcodes import exit_code_for
from seald.api.errors import STATUS_FOR_ERROR, Unimplemented
from seald.domain.errors import SealError
from seald.domain.reasons import REASONS, ExitCode, Side, Status

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "daemon" / "seald", ROOT / "client" / "sealclient"]
CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# sealctl's local errors take the reason first, positionally.
LOCAL_ERRORS = {"LocalInputError", "LocalVerificationError"}
COLLECTIONS = {"frozenset", "set", "tuple"}


@dataclass(frozen=True)
class Use:
    reason: str
    cls: str
    where: str


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def scan(path: Path) -> tuple[list[Use], list[tuple[str, str]]]:
    """(literal uses, computed f-string patterns) of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    consts = {
        n.targets[0].id: n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
    }
    uses: list[Use] = []
    computed: list[tuple[str, str]] = []

    def add(value: ast.AST, cls: str, node: ast.AST) -> None:
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            if CODE.match(value.value):
                uses.append(Use(value.value, cls, where))
        elif isinstance(value, ast.JoinedStr):
            parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in value.values]
            computed.append(("".join(parts), where))
        elif isinstance(value, ast.Call) and _name(value.func) == "getattr" and len(value.args) == 3:
            add(value.args[2], cls, node)
        elif isinstance(value, ast.Call) and _name(value.func) in funcs:
            for ret in ast.walk(funcs[_name(value.func)]):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    add(ret.value, cls, node)
        elif isinstance(value, ast.IfExp):
            add(value.body, cls, node)
            add(value.orelse, cls, node)
        elif isinstance(value, ast.Tuple | ast.Set | ast.List):
            for element in value.elts:
                add(element, cls, node)
        elif isinstance(value, ast.Call) and value.args and _name(value.func) in COLLECTIONS:
            add(value.args[0], cls, node)
        elif isinstance(value, ast.Name) and value.id in consts:
            add(consts[value.id], cls, node)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = _name(node.func)
            for keyword in node.keywords:
                if keyword.arg == "reason":
                    add(keyword.value, fn, node)
            if fn in LOCAL_ERRORS and node.args:
                add(node.args[0], fn, node)
            if fn in funcs:  # a local function with a positional "reason" parameter
                params = [a.arg for a in funcs[fn].args.args if a.arg != "self"]
                if "reason" in params and params.index("reason") < len(node.args):
                    add(node.args[params.index("reason")], fn, node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "default_reason" for t in node.targets
        ):
            add(node.value, "default", node)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "reason" for s in sides):
                for side in sides:
                    add(side, "compare", node)
    return uses, computed


def all_uses() -> tuple[list[Use], list[tuple[str, str]]]:
    uses: list[Use] = []
    computed: list[tuple[str, str]] = []
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            if path.name == "reasons.py":
                continue
            u, c = scan(path)
            uses += u
            computed += c
    return uses, computed


def test_every_reason_in_the_code_is_registered() -> None:
    uses, computed = all_uses()
    assert len({u.reason for u in uses}) > 150
    missing = sorted({f"{u.reason} ({u.where})" for u in uses if u.reason not in REASONS})
    assert missing == []
    unmatched = [
        f"{pattern} ({where})"
        for pattern, where in computed
        if not any(re.fullmatch(pattern, name) for name in REASONS)
    ]
    assert unmatched == []


def test_the_scan_finds_the_kinds_of_use(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "PROBLEMS = frozenset({'in_a_set'})\n"
        "class E(Exception):\n    default_reason = 'a_default'\n"
        "def code():\n    return 'returned'\n"
        "def f(ex, field):\n"
        "    raise InvalidInput('m', reason='a_keyword')\n"
        "    raise InvalidInput('m', reason=f'missing_{field}')\n"
        "    raise LocalInputError('local_one', 'm')\n"
        "    PreconditionFailed('m', reason=code())\n"
        "    getattr(ex, 'reason', 'fallback')\n"
        "    x(reason=getattr(ex, 'reason', 'fallback'))\n"
        "    return ex.reason in PROBLEMS or ex.reason == 'compared'\n",
        encoding="utf-8",
    )
    uses, computed = scan(sample)
    assert {u.reason for u in uses} == {
        "in_a_set", "a_default", "returned", "a_keyword", "local_one", "fallback", "compared",
    }
    assert [pattern for pattern, _ in computed] == ["missing_.+"]


def _error_classes() -> dict[str, type[SealError]]:
    for module in pkgutil.walk_packages(seald.__path__, "seald."):
        if module.name not in {"seald.app"}:
            importlib.import_module(module.name)
    found: dict[str, type[SealError]] = {}
    pending: list[type[SealError]] = [SealError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending += cls.__subclasses__()
    return found


def _grpc_status(cls: type[SealError]) -> str:
    for klass in cls.__mro__:
        if klass in STATUS_FOR_ERROR:
            return STATUS_FOR_ERROR[klass].name
    return "INTERNAL"


# The signing layer's errors are translated where they are caught (the same document
# problem is INVALID_ARGUMENT at upload and a FAILED request at signing time): their
# raise sites say nothing about the RPC status.
TRANSLATED = {"SigningError", "InputDocumentError", "TokenSigningError", "SealImageError", "PlacementError"}


def test_raise_sites_answer_the_registered_status() -> None:
    classes = _error_classes()
    assert Unimplemented.__name__ in classes
    wrong = []
    for use in all_uses()[0]:
        cls = classes.get(use.cls)
        if cls is None or use.cls in TRANSLATED or use.reason not in REASONS:
            continue
        entry = REASONS[use.reason]
        allowed = {s.name for s in (entry.status, *entry.also)}
        if _grpc_status(cls) not in allowed:
            status = _grpc_status(cls)
            wrong.append(f"{use.reason}: {use.cls} ({status}) at {use.where}, registered {allowed}")
    assert wrong == []


@pytest.mark.parametrize("name", sorted(REASONS))
def test_sealctl_exits_with_the_registered_code(name: str) -> None:
    entry = REASONS[name]
    assert entry.meaning.strip(), f"{name} has no meaning"
    if entry.exit_code is None:
        assert entry.status is Status.NONE
        return
    if entry.status is Status.DATA_LOSS or name == "client_config_invalid":
        assert entry.side is Side.CLIENT
        assert entry.exit_code in {ExitCode.VERIFICATION_FAILED, ExitCode.USAGE}
        return
    code = grpc.StatusCode[entry.status.name]
    assert exit_code_for(SealClientError(code, name, "m")) == entry.exit_code
    for other in entry.also:
        assert exit_code_for(SealClientError(grpc.StatusCode[other.name], name, "m")) in set(ExitCode)


def test_docs_reasons_md_is_generated_from_the_registry() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_reasons.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "| `not_visible` | PERMISSION_DENIED | 3 | seald |" in (ROOT / "docs" / "reasons.md").read_text()


def test_every_text_policy_field_has_its_reasons_registered() -> None:
    """check_text/text_in build reasons from the field name (``<field>_too_long``,
    ``bad_<field>``, and ``missing_<field>`` when required): each must be registered,
    and a reason never carries client text (a fuzzed seal id once became a reason and
    broke the gRPC trailer)."""
    root = Path(__file__).resolve().parents[2]
    call = re.compile(r"(?:text_in|check_text)\(\s*([^,\s]+)\s*,[^\n]*")
    seen = 0
    for path in [*root.glob("daemon/seald/**/*.py"), *root.glob("client/sealclient/**/*.py")]:
        for m in call.finditer(path.read_text(encoding="utf-8")):
            field = m.group(1)
            if field == "field":  # the policy's own plumbing passes its parameter on
                continue
            assert re.fullmatch(r'"[a-z_]+"', field), f"{path.name}: field {field} must be a literal name"
            name = field.strip('"')
            wanted = [f"{name}_too_long", f"bad_{name}"]
            if "required=True" in m.group(0):
                wanted.append(f"missing_{name}")
            missing = [r for r in wanted if r not in REASONS]
            assert not missing, f"{path.name}: {missing} not registered in seald.domain.reasons"
            seen += 1
    assert seen >= 15
