"""The package itself: CLI, exception type, notebooks committed thin and without outputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mtdtl
from mtdtl.cli import build_parser, main
from mtdtl.errors import MtdtlError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_version_and_error_type():
    assert re.match(r"\d+\.\d+\.\d+", mtdtl.__version__)
    assert mtdtl.MtdtlError is MtdtlError


def _module_imports() -> dict[str, set[str]]:
    """Module-level ``mtdtl`` imports of every module of the package (imports inside functions,
    which run late, and ``TYPE_CHECKING`` blocks are not edges)."""
    import ast

    pkg = ROOT / "mtdtl"
    mods = {}
    for f in pkg.rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        edges = set()
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.If):  # if TYPE_CHECKING:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                # "from pkg import submodule" needs the submodule, not the package's __init__
                targets = subs if all(t in mods for t in subs) else [node.module] + subs
            for t in targets:
                if t in mods and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def test_no_import_cycles_between_modules():
    graph = _module_imports()
    assert "mtdtl.features.base" in graph and "mtdtl.runs" in graph
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycle = path[path.index(m):] + [m] if m in path else [n, m]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "mtdtl.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("corpus", "demo", "extract"):
        assert cmd in out


def test_cli_reports_mtdtl_errors_cleanly(tmp_path, capsys):
    # a checkpoint that does not exist: a clear message and exit status 2, no traceback
    rc = main(["-q", "extract", str(tmp_path / "missing.safetensors"), str(tmp_path / "a.wav"), "-o", str(tmp_path / "f.npy")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "mtdtl: error:" in err and "Traceback" not in err


def test_parser_rejects_unknown_subcommand():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["nope"])


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_thin_and_clean(nb):
    data = json.loads(nb.read_text())
    code = [c for c in data["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in code), "commit notebooks without outputs"
    assert all(c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for c in code:
        src = "".join(c["source"])
        assert not re.search(r"^\s*(def|class)\s", src, re.M), "logic belongs in mtdtl/, not notebooks"


def test_walkthrough_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_preprocess", "02_train", "03_evaluate"} <= names
