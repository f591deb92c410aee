"""The package's layers, read from the source: no import cycle, no module looked up by name at run time, the
maths modules free of the store and of Prefect, and every stage reachable from the refresh flow."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATHS = ("curves", "fitting", "taxonomy", "counterparts", "projection", "horizons", "ranges", "expressions",
         "scenario", "config", "scoring", "registry", "gaps")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _project_imports(path: Path, known: set[str]) -> set[str]:
    """Every project module `path` imports, at any depth of the file (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("flows/*.py")]
    known = {_module_name(p) for p in files}
    graph = {}
    for path in files:
        name = _module_name(path)
        # a package's __init__ re-exporting its own submodules is not a cycle through them
        graph[name] = {m for m in _project_imports(path, known) if m != name and not m.startswith(name + ".")}
    return graph


def test_no_import_cycle(graph):
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_walk_would_see_a_cycle(tmp_path):
    """The cycle check is not vacuous: the same walk finds one in a graph that has it."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    seen, stack = set(), []

    def has_cycle(node):
        if node in stack:
            return True
        if node in seen:
            return False
        seen.add(node)
        stack.append(node)
        found = any(has_cycle(n) for n in graph[node])
        stack.pop()
        return found

    assert has_cycle("a")


def test_no_module_is_looked_up_by_name():
    for path in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("flows/*.py")]:
        text = path.read_text()
        assert "import_module" not in text and "__import__" not in text, path


def test_maths_modules_know_nothing_of_the_store_or_prefect(graph):
    for name in MATHS:
        deps = graph[f"pipeline.{name}"]
        assert "pipeline.store" not in deps and not any(d.startswith("pipeline.stages") for d in deps), (name, deps)
        tree = ast.parse((ROOT / "pipeline" / f"{name}.py").read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"duckdb", "prefect", "prefect_dask"}, (name, imported)


def test_pipeline_never_imports_prefect(graph):
    """Only the command line (the entry point above both) reaches into flows/, and only for run and serve."""
    for name, deps in graph.items():
        if name.startswith("pipeline") and name != "pipeline.cli":
            assert not any(d.startswith("flows") for d in deps), (name, deps)


def test_refresh_flow_calls_every_stage():
    from pipeline import stages

    assert set(stages.STAGES) == set(stages.ORDER)
    text = (ROOT / "flows" / "refresh.py").read_text()
    assert "stages.STAGES[stage]" in text and "stages.ORDER" in text
