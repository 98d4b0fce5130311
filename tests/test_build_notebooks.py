"""The committed notebooks are exactly what scripts/build_notebooks.py generates (no drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_notebooks_match_the_generator(tmp_path):
    mod = _builder()
    mod.OUT = tmp_path
    mod.main()
    generated = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    committed = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert generated == committed
    for name in generated:
        assert (tmp_path / name).read_text() == (ROOT / "notebooks" / name).read_text(), (
            f"notebooks/{name} differs from what scripts/build_notebooks.py generates: run it and commit")

