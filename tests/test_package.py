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
    assert issubclass(MtdtlError, Exception)
    assert mtdtl.MtdtlError is MtdtlError


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
