"""Imports run one way: no cycle between flap's modules or packages, and no edge against the layering.

Every ``import`` / ``from ... import`` of a ``flap`` module anywhere in a file counts (also the
ones inside functions). Layers, lowest first; a module may import its own layer and lower ones:

    errors, validate, cli_support, io, signals → flame → audio, render, tracking → control → models → portrait, windows
    → pipeline → data, eval, training → testing → cli (generate, generate_io, evaluate, benchmark, train, app)
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = [
    {"flap", "flap.errors", "flap.validate", "flap.cli_support", "flap.io", "flap.signals"},
    {"flap.flame"},
    {"flap.audio", "flap.render", "flap.tracking"},
    {"flap.control"},
    {"flap.models"},
    {"flap.portrait", "flap.windows"},
    {"flap.pipeline"},
    {"flap.data", "flap.eval", "flap.training"},
    {"flap.testing"},
    {"flap.generate", "flap.generate_io", "flap.evaluate", "flap.benchmark", "flap.train", "flap.app"},
    {"flap.finetune"},  # prepares, trains and benchmarks: uses flap.benchmark
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in (ROOT / "flap").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _resolve(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """``module -> {flap modules it imports}`` (``flap.x.y``; a package is its ``__init__``)."""
    mods = _modules()
    graph = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" for a in node.names]  # a name resolves to its module
            else:
                continue
            for target in targets:
                if target == "flap" or target.startswith("flap."):
                    dep = _resolve(target, mods)
                    if dep and dep != name:
                        graph[name].add(dep)
    return graph


def unit(module: str) -> str:
    """The layering unit of a module: its top-level package or module (``flap.eval.runner`` → ``flap.eval``)."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_every_unit_has_a_layer():
    missing = sorted({unit(m) for m in _modules()} - set(RANK))
    assert not missing, f"add {missing} to LAYERS in {__file__}"


def test_no_import_cycle_between_modules():
    assert _cycles(import_graph()) == []


def test_no_import_cycle_between_packages():
    packages = defaultdict(set)
    for src, deps in import_graph().items():
        for dep in deps:
            if unit(src) != unit(dep) and unit(dep) != "flap":
                packages[unit(src)].add(unit(dep))
    assert _cycles(packages) == []


def test_imports_follow_the_layering():
    bad = sorted(
        f"{src} imports {dep}"
        for src, deps in import_graph().items()
        for dep in deps
        if RANK[unit(dep)] > RANK[unit(src)]
    )
    assert bad == []


def test_the_checks_can_fail():
    """The graph sees function-level imports, and the cycle finder finds a planted cycle."""
    graph = import_graph()
    assert "flap.pipeline" in graph["flap.generate"]  # imported inside generate()
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert RANK[unit("flap.pipeline")] < RANK[unit("flap.training.vae")]  # pipeline may not import training
