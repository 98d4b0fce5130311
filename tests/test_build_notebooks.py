"""The committed notebooks are exactly what scripts/build_notebooks.py generates (no drift), in
notebooks/ and in the copies shipped with the package (mtdtl/data/notebooks/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("folder", ["notebooks", "mtdtl/data/notebooks"])
def test_committed_notebooks_match_the_generator(tmp_path, folder):
    mod = _builder()
    mod.OUT = tmp_path / "notebooks"
    mod.PACKAGE_OUT = tmp_path / "package"  # the test never writes into the repository
    mod.main()
    for out in (mod.OUT, mod.PACKAGE_OUT):
        generated = sorted(p.name for p in out.glob("*.ipynb"))
        committed = sorted(p.name for p in (ROOT / folder).glob("*.ipynb"))
        assert generated == committed
        for name in generated:
            assert (out / name).read_text() == (ROOT / folder / name).read_text(), (
                f"{folder}/{name} differs from what scripts/build_notebooks.py generates: run it and commit")


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_papermill_reads_every_parameter(name):
    """Every assignment of the parameters cell is a parameter papermill knows (a line it cannot
    parse, e.g. an '=' inside the comment, makes papermill warn 'unknown parameter')."""
    import nbformat
    import papermill as pm

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "one cell tagged parameters"
    declared = [ln.split(":", 1)[0].split("=", 1)[0].strip() for ln in cells[0].source.splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    assert sorted(pm.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"))) == sorted(declared)
