"""The package's layering contract: every import, at module level or inside a function, points down.

Layers, lowest first: ``errors`` < ``flopmodel`` (the walk) < ``hardware`` (catalog, profiles) < ``calibrate``
(microbenchmarks that produce profiles) < ``pricing`` (op table, timelines, data parallel, cost) < ``correction``
(the learned residual) < ``api``/``decide`` (predict, compare, ranking) < ``queries`` (predict and compare as the
front ends take them) < ``sweeps`` (measured steps, datasets, fitting the residual) < ``reports`` (insights) <
``cli``/``web`` (the two front ends: the command line, and the web app it serves). A module may import its own
layer and the layers below.
Also checked here: module size and that no tracked file names a path of the development machine.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "traincost"
LAYERS = ["errors|version", "flopmodel", "hardware", "calibrate", "pricing", "correction", "api|decide", "queries",
          "sweeps", "reports", "cli|web"]
RANK = {name: i for i, group in enumerate(LAYERS) for name in group.split("|")}
#: the formula registry is one table of per-op formulas: long by nature.
MAX_LINES = 800
LONG_BY_NATURE = {"traincost/flopmodel/formulas.py"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "traincost" or len(parts) < 2:
        return None                                   # the package root re-exports the API: not a layer
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "traincost":              # from traincost import correction -> traincost.correction
                out += [(node.lineno, f"traincost.{a.name}") for a in node.names
                        if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file()]
            else:
                out.append((node.lineno, node.module))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_belongs_to_a_layer():
    for path in _modules():
        layer = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
        assert layer in RANK, f"{path.relative_to(ROOT)} is in no layer of {LAYERS}"


def test_imports_point_down():
    upward = []
    for path in _modules():
        here = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, target in _imports(path):
            there = _layer(target)
            if there is None:
                continue
            if there not in RANK:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}: not a module of any layer")
            elif RANK[there] > RANK[here]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {target} ({there}): points up")
    assert not upward, "\n".join(upward)


def test_the_checker_catches_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from traincost.api import predict\n    from traincost import cli\n")
    assert [t for _, t in _imports(bad)] == ["traincost.api", "traincost.cli"]
    assert RANK[_layer("traincost.api")] > RANK["pricing"] and RANK[_layer("traincost.cli")] == len(LAYERS) - 1


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {t for t in found if t in modules and t != name}
    return graph


def test_no_import_cycle_in_the_package():
    """Not even through a package ``__init__`` or a function-level import."""
    graph, state, stack, cycles = _graph(), {}, [], []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_modules_stay_small():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
            and str(p.relative_to(ROOT)) not in LONG_BY_NATURE]
    assert not long, "\n".join(long)


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_names_a_development_machine_path():
    needles = ("/" + "work/", "/" + "root/", "../" + "shared/")
    found = []
    for path in _tracked():
        if path.suffix not in {".py", ".md", ".toml", ".json", ".csv", ".sh", ".txt", ".log", ".yaml", ".yml", ".sbatch", ".html", ""}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for needle in needles:
            if needle in text:
                found.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not found, "\n".join(found[:30])
