"""The trainer's modules import each other as a DAG (no circle, function-local imports included), and
the layers hold: the engine imports neither the trainer nor the app, the trainer never the app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports anywhere in its body (top level or in a function)."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in (ROOT / package).rglob("*.py")}
    modules = {name.removesuffix(".__init__"): p for name, p in modules.items()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}  # `from trainer import data`
        graph[name] = {m for m in found if m in modules and m != name and m != package}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_trainer_has_no_import_circle():
    graph = imports_of("trainer")
    assert "trainer.recipe" in graph and graph["trainer.recipe"]  # the graph was read
    assert cycle_in(graph) is None, " -> ".join(cycle_in(graph))


def test_training_and_evaluation_share_the_forward_pass_and_neither_imports_the_other():
    graph = imports_of("trainer")
    assert "trainer.forward" in graph["trainer.recipe"] and "trainer.forward" in graph["trainer.evaluate"]
    assert not graph["trainer.forward"] & {"trainer.recipe", "trainer.evaluate", "trainer.init_from"}
    assert "trainer.recipe" not in graph["trainer.evaluate"] and "trainer.evaluate" not in graph["trainer.init_from"]


@pytest.mark.parametrize("package, never", [("engine", ("trainer", "tui")), ("trainer", ("tui",))])
def test_the_engine_and_the_trainer_never_import_what_sits_above_them(package, never):
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in never]
    assert not offenders


def test_the_task_suite_is_data_and_checks_and_never_plays_a_session():
    """engine/tasks holds the tasks and their hidden checks; playing one as a session is the session
    layer's (engine/session/episode.py, on the one driver): the suite importing it would be a circle."""
    graph = imports_of("engine")
    offenders = {m: sorted(d for d in deps if d.startswith("engine.session"))
                 for m, deps in graph.items() if m.startswith("engine.tasks")}
    assert "engine.tasks.reviewer" in graph  # the graph was read
    assert not {m: d for m, d in offenders.items() if d}
