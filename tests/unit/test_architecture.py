"""The rooms of seald keep their shape (issue 15): checks on the source, by AST.

- no import cycle among seald's modules (a package's ``__init__`` counts: importing
  ``a.b`` runs ``a/__init__.py`` first);
- no class with more than 20 public methods, gRPC servicers (one method per RPC) aside;
- the client imports nothing of the daemon but the pure, shared ``seald.domain`` at module
  level (``sealctl audit verify --offline`` reads a copied state database and imports the
  store's reader inside that one command).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAEMON = ROOT / "daemon"
CLIENT = ROOT / "client" / "sealclient"
MAX_PUBLIC_METHODS = 20


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def seald_modules() -> dict[str, Path]:
    return {module_name(p, DAEMON): p for p in (DAEMON / "seald").rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST, *, top_level_only: bool = False) -> Iterator[tuple[str, list[str]]]:
    """(module, imported names) of every import executed at run time."""

    def walk(node: ast.AST, depth: int) -> Iterator[tuple[str, list[str]]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # never executed: annotations only
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, []
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                yield child.module, [a.name for a in child.names]
            inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if not (top_level_only and inner):
                yield from walk(child, depth + inner)

    yield from walk(tree, 0)


def import_graph() -> dict[str, set[str]]:
    modules = seald_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        edges = graph[name]
        if "." in name:
            edges.add(name.rsplit(".", 1)[0])  # the parent package runs first
        for module, names in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module in modules:
                edges.add(module)
            edges.update(f"{module}.{n}" for n in names if f"{module}.{n}" in modules)
        edges.discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_seald() -> None:
    graph = import_graph()
    assert "seald.runtime.daemon" in graph and "seald.service.signer" in graph
    assert cycles(graph) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    """The detector itself: a cycle through a package __init__ is reported."""
    graph = {"a": {"a.b"}, "a.b": {"a", "c"}, "c": set()}
    assert cycles(graph) == [["a", "a.b"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def _public_methods(node: ast.ClassDef) -> list[str]:
    return [
        f.name
        for f in node.body
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and not f.name.startswith("_")
    ]


def _is_servicer(node: ast.ClassDef) -> bool:
    names = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
    return any(n.endswith("Servicer") for n in names)


def test_no_class_but_a_servicer_has_more_than_20_public_methods() -> None:
    big = []
    for name, path in seald_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not _is_servicer(node):
                count = len(_public_methods(node))
                if count > MAX_PUBLIC_METHODS:
                    big.append(f"{name}.{node.name}: {count} public methods")
    assert big == []


def test_the_servicers_are_exempt_by_their_base() -> None:
    tree = ast.parse("class TokenServicer(Servicer, tokens_pb2_grpc.TokenServiceServicer):\n    pass\n")
    cls = tree.body[0]
    assert isinstance(cls, ast.ClassDef) and _is_servicer(cls)
    plain = ast.parse("class Signer:\n    pass\n").body[0]
    assert isinstance(plain, ast.ClassDef) and not _is_servicer(plain)


def test_client_imports_only_the_pure_domain_of_seald_at_module_level() -> None:
    offenders = []
    for path in CLIENT.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for module, _ in imports(tree, top_level_only=True):
            if module.split(".")[0] == "seald" and not module.startswith("seald.domain"):
                offenders.append(f"{path.name}: {module}")
    assert offenders == []


# What each room may import (docs/architecture.md, "The rooms"). ``support`` is the three
# leaf modules of runtime/ that every room may use; the rest of runtime/ wires it all.
SUPPORT = {"seald.runtime.logs", "seald.runtime.hooks", "seald.runtime.metrics"}
MAY_IMPORT = {
    "domain": set(),
    "config": {"domain"},
    "support": {"domain"},
    "gm": {"domain"},  # SM2/SM3 and GB/T 38540 primitives
    "signing": {"domain", "gm"},
    "webauthn": {"domain", "config", "support"},  # assertion checks (approvals, verify)
    "store": {"domain", "support"},
    "workflow_events": {"domain"},  # issue 17: the outbox events of seal/custody changes
    "notify": {"domain", "config", "store", "support"},  # webhook delivery from the outbox
    "workflow": {"domain", "config", "notify", "store", "support"},  # delegations, quotas
    "tokens": {"domain", "config", "gm", "store", "workflow_events", "support"},
    "service": {"domain", "config", "gm", "signing", "store", "tokens", "webauthn", "workflow", "support"},
    "registry": {
        "domain", "config", "gm", "service", "signing", "store", "tokens", "workflow_events", "support",
    },
    "webauthn-registry": {"domain", "config", "service", "store", "webauthn", "support"},
    "audit": {"domain", "config", "signing", "store", "support"},
    "api": {
        "domain", "config", "gm", "signing", "store", "tokens", "service", "registry",
        "webauthn", "webauthn-registry", "audit", "notify", "workflow", "support",
    },
}


def room(module: str) -> str:
    if module in SUPPORT:
        return "support"
    if module == "seald.webauthn.registry":  # enrolment and keys: a service-level room
        return "webauthn-registry"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else module  # a flat module (seald.workflow) is its own room


def test_each_room_imports_only_the_rooms_below_it() -> None:
    graph = import_graph()
    packages = {m for m, p in seald_modules().items() if p.name == "__init__.py"}
    wrong = []
    for module, targets in graph.items():
        allowed = MAY_IMPORT.get(room(module))
        if allowed is None:
            continue  # runtime/ (wiring, daemon, reload, sdnotify), app.py: they wire everything
        for target in targets - packages:
            if room(target) != room(module) and room(target) not in allowed:
                wrong.append(f"{module} -> {target}")
    assert wrong == []
