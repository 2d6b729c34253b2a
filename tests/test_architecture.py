"""The package shape of docs/design.md §8, kept true by a scan of every import.

- `faultproof/` is the protocol shared by all: it imports no daemon (`agent`, `oracle`, `ledger`)
  and not the command-line face (`cli`).
- `ledger/` is top level; `oracle/` holds no ledger.
- No import cycle between modules, counting imports inside functions too (a lazy import is still a
  dependency); only `if TYPE_CHECKING:` blocks are left out, since they never run.
- Only `cli/` may import every part; no daemon imports `cli`.
- `dashboard/` is a reader (DESIGN §17): it may use the ledger's pure rules and receipt checks, but
  no oracle or agent code, and nothing but `cli` imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("faultproof", "agent", "oracle", "ledger", "cli", "dashboard")
DAEMONS = ("agent", "oracle", "ledger")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from a.b import c` names module a.b.c when it exists, else attribute c of a.b.
            for alias in node.names:
                yield f"{target}.{alias.name}"


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        deps = set()
        for target in _imports(tree, name, path.name == "__init__.py"):
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def _top(module: str) -> str:
    return module.split(".")[0]


def test_faultproof_imports_no_daemon_and_no_face() -> None:
    offenders = sorted(f"{m} -> {d}" for m, deps in import_graph().items() if _top(m) == "faultproof"
                       for d in deps if _top(d) in (*DAEMONS, "cli"))
    assert offenders == []


def test_no_daemon_imports_the_face() -> None:
    offenders = sorted(f"{m} -> {d}" for m, deps in import_graph().items() if _top(m) in DAEMONS
                       for d in deps if _top(d) == "cli")
    assert offenders == []


def test_ledger_is_top_level_and_oracle_holds_none() -> None:
    assert (ROOT / "ledger" / "state.py").is_file()
    assert not (ROOT / "oracle" / "ledger").exists()
    oracle_files = [p.name for p in (ROOT / "oracle").rglob("*.py")]
    assert "state.py" not in oracle_files


def test_no_import_cycle() -> None:
    graph = import_graph()
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_dashboard_is_a_reader() -> None:
    graph = import_graph()
    uses = sorted(f"{m} -> {d}" for m, deps in graph.items() if _top(m) == "dashboard"
                  for d in deps if _top(d) in ("oracle", "agent", "cli"))
    used_by = sorted(f"{m} -> {d}" for m, deps in graph.items() if _top(m) not in ("dashboard", "cli")
                     for d in deps if _top(d) == "dashboard")
    assert uses == [] and used_by == []
