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


# ---------------------------------------------------------------------------------------
# the command line: front-end hardening
# ---------------------------------------------------------------------------------------

def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"mtdtl {mtdtl.__version__}"


def test_python_dash_m_mtdtl(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mtdtl", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"mtdtl {mtdtl.__version__}"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["-q", "demo"], ["demo", "-q"], ["demo", "--quiet"]])
def test_quiet_before_or_after_the_subcommand(argv):
    args = build_parser().parse_args(argv)
    assert args.quiet is True and args.verbose is False


def test_verbose_after_the_subcommand_and_defaults():
    p = build_parser()
    assert p.parse_args(["extract", "mfcc", "a.wav", "-o", "f.npy", "-v"]).verbose is True
    assert p.parse_args(["corpus", "demo", "-v"]).verbose is True
    args = p.parse_args(["demo"])
    assert args.quiet is False and args.verbose is False


@pytest.mark.parametrize("argv", [[], ["demo"], ["extract"], ["corpus"], ["corpus", "demo"]])
def test_help_text_has_no_rest_markup(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv + ["--help"])
    out = capsys.readouterr().out
    assert "usage: mtdtl" in out
    for markup in ("``", ":func:", ":mod:", ":class:", ":data:"):
        assert markup not in out, f"raw reST {markup!r} in mtdtl {' '.join(argv)} --help"


@pytest.mark.parametrize("bad", [["--arch", "nope"], ["--size", "smal"], ["--sources", "self,tga"],
                                 ["--epochs", "0"], ["--k", "-1"]])
def test_demo_typos_fail_before_any_work(bad, tmp_path, monkeypatch, capsys):
    import mtdtl.walkthrough

    def no_work(**kw):
        raise AssertionError("the walkthrough started")

    monkeypatch.setattr(mtdtl.walkthrough, "run_walkthrough", no_work)
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as e:
        main(["demo", "-o", str(out)] + bad)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "mtdtl demo: error: argument" in err and bad[0] in err
    assert not out.exists()


def test_sweep_subcommand_is_registered_with_the_common_options():
    sweep = pytest.importorskip("mtdtl.sweep")
    if not hasattr(sweep, "add_cli"):
        pytest.skip("mtdtl.sweep has no add_cli")
    args = build_parser().parse_args(["sweep", "status", "x.toml", "-q"])
    assert args.quiet is True and callable(args.func)


def test_demo_choices_come_from_the_registries(capsys):
    from mtdtl.constants import ARCH_IDS
    from mtdtl.corpora.demo import SIZES
    from mtdtl.walkthrough import DEMO_SIZES

    assert set(DEMO_SIZES) == set(SIZES)
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "{" + ",".join(ARCH_IDS) + "}" in out and "{" + ",".join(DEMO_SIZES) + "}" in out


def _wav(path, seconds=3.0):
    import numpy as np
    import soundfile as sf

    t = np.arange(int(22050 * seconds)) / 22050
    sf.write(path, (0.2 * np.sin(2 * np.pi * 440 * t))[:, None].repeat(2, 1), 22050)
    return path


def test_extract_fails_when_a_file_cannot_be_read(tmp_path, capsys):
    good = _wav(tmp_path / "good.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    out = tmp_path / "f.npy"
    rc = main(["-q", "extract", "mfcc", str(good), str(bad), "-o", str(out)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "1 of 2 files could not be read" in captured.err and str(bad) in captured.err and "--skip-bad" in captured.err
    rc = main(["extract", "mfcc", str(good), str(bad), "-o", str(out), "--skip-bad", "-q"])
    captured = capsys.readouterr()
    assert rc == 0 and str(bad) in captured.err and "features of 1 of 2 files written" in captured.out
    import numpy as np

    X = np.load(out)
    assert X.shape[0] == 2 and np.isfinite(X[0]).all() and np.isnan(X[1]).all()


# ---------------------------------------------------------------------------------------
# packaging: the notebooks ship inside the package
# ---------------------------------------------------------------------------------------

PACKAGE_NOTEBOOKS = ROOT / "mtdtl" / "data" / "notebooks"


def test_package_carries_the_same_notebooks():
    shipped = sorted(p.name for p in PACKAGE_NOTEBOOKS.glob("*.ipynb"))
    assert shipped == [p.name for p in NOTEBOOKS] and shipped
    for p in NOTEBOOKS:
        assert (PACKAGE_NOTEBOOKS / p.name).read_bytes() == p.read_bytes(), (
            f"mtdtl/data/notebooks/{p.name} differs from notebooks/{p.name}: run scripts/build_notebooks.py")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_language_metadata(nb):
    info = json.loads(nb.read_text())["metadata"]["language_info"]
    assert info["name"] == "python" and info["file_extension"] == ".py" and info["mimetype"] == "text/x-python"


def test_notebooks_dir_prefers_the_checkout_then_the_package(tmp_path, monkeypatch):
    import mtdtl.notebooks as nbs

    monkeypatch.delenv("MTDTL_NOTEBOOKS", raising=False)
    assert nbs.notebooks_dir() == ROOT / "notebooks"
    monkeypatch.setattr(nbs, "_CHECKOUT", tmp_path)  # an installed package: no checkout around it
    assert nbs.notebooks_dir() == PACKAGE_NOTEBOOKS
    assert nbs.notebook_path("02_train") == PACKAGE_NOTEBOOKS / "02_train.ipynb"
    monkeypatch.setenv("MTDTL_NOTEBOOKS", str(tmp_path / "missing"))
    with pytest.raises(MtdtlError, match="MTDTL_NOTEBOOKS"):
        nbs.notebooks_dir()


@pytest.mark.slow
def test_wheel_ships_the_notebooks(tmp_path):
    """A plain (non-editable) install: build the wheel from a copy of the project, unpack it, and
    find the walkthrough notebooks from the unpacked package."""
    import shutil
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "mtdtl", src / "mtdtl", ignore=shutil.ignore_patterns("__pycache__", "*.tmp"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("mtdtl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for p in NOTEBOOKS:
        assert f"mtdtl/data/notebooks/{p.name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import mtdtl, mtdtl.notebooks as n; print(mtdtl.__file__); print(n.notebook_path('03_evaluate'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**__import__("os").environ, "PYTHONPATH": str(site), "MTDTL_NOTEBOOKS": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    where, nb = r.stdout.split()
    assert where.startswith(str(site)) and nb == str(site / "mtdtl" / "data" / "notebooks" / "03_evaluate.ipynb")


def _architecture_tree() -> dict[str, str]:
    """Top-level entries of the tree in docs/ARCHITECTURE.md -> the rest of their line."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = text.split("## The tree", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    for line in block.splitlines()[2:]:
        if not line.startswith("  ") or not line.strip():
            continue
        import re as _re

        head = _re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]  # names, then the description
        for n in head.split():
            entries[n] = line
    return entries


def test_architecture_tree_is_the_package_tree():
    tree = _architecture_tree()
    pkg = ROOT / "mtdtl"
    actual = {p.name for p in pkg.glob("*.py") if p.name != "__init__.py"} | {p.name + "/" for p in pkg.iterdir()
                                                   if p.is_dir() and not p.name.startswith("__")}
    assert set(tree) == actual, (f"docs/ARCHITECTURE.md lists {sorted(set(tree) - actual)} that do not exist and "
                                 f"misses {sorted(actual - set(tree))}")
    for folder, line in tree.items():  # every module of a package is named on its line
        if folder.endswith("/") and folder != "data/":
            for f in (pkg / folder).glob("*.py"):
                if f.stem != "__init__":
                    assert f.stem in line, f"docs/ARCHITECTURE.md: {folder}{f.name} is missing from the tree"
            for sub in (pkg / folder).iterdir():
                if sub.is_dir() and not sub.name.startswith("__"):
                    assert sub.name + "/" in line, f"docs/ARCHITECTURE.md: {folder}{sub.name}/ is missing"
