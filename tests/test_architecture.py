"""The layout's promises, checked from the source: no import cycles, a pure engine."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "app", "reports")
UI_AND_PLOTTING = ("panel", "bokeh", "holoviews", "param", "matplotlib")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (late imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_import_cycles_in_engine_app_or_reports():
    mods = _modules()
    graph = {m: {n for n in _imports(p) if n in mods and n != m} for m, p in mods.items()}
    # A package's __init__ importing its own submodules is not a cycle back into it.
    for m in graph:
        graph[m] = {n for n in graph[m] if not n.startswith(m + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " → ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_engine_imports_no_ui_or_plotting_library():
    for name, path in _modules().items():
        if not name.startswith("engine"):
            continue
        bad = {n for n in _imports(path) if n.split(".")[0] in UI_AND_PLOTTING}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_engine_imports_nothing_of_the_app():
    """The engine, the run-process host included, never reaches up into the page."""
    for name, path in _modules().items():
        if name.startswith("engine"):
            bad = {n for n in _imports(path) if n.split(".")[0] == "app"}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


MAX_ENGINE_LINES = 400


def test_no_engine_module_is_over_400_lines():
    """A module over this is two concepts (README's promise)."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "engine").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_ENGINE_LINES}
    assert not long, f"over {MAX_ENGINE_LINES} lines: {long}"


def test_errors_module_is_a_leaf():
    assert not {n for n in _imports(ROOT / "engine" / "errors.py") if n.startswith("engine")}


def test_the_code_passes_ruff():
    """The lint settings in pyproject.toml hold for the whole tree (ruff is in the dev extra)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    done = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
