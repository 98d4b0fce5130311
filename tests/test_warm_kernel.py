"""The warm kernel of sweeps: one kernel runs many notebooks, each from an empty namespace."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from mtdtl.errors import MtdtlError
from mtdtl.notebooks import WarmKernel, run_notebook, shutdown_warm_kernels, warm_kernel


def _notebook(folder):
    """A notebook with a parameters cell that reports what a leftover namespace would show."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("value = 1\nfail = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import gc, json, os, sys\n"
            "leftover = 'secret' in dir()\n"
            "report = {'leftover': leftover, 'pid': os.getpid(), 'cwd': os.getcwd(), 'value': value,\n"
            "          'preloaded': 'colorsys' in sys.modules, 'env': os.environ.get('MTDTL_WARM_TEST'),\n"
            "          'frozen': gc.get_freeze_count()}\n"
            "secret = value\n"
            "open('report.json', 'w').write(json.dumps(report))\n"
            "if fail:\n"
            "    raise RuntimeError('asked to fail')"),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "probe.ipynb")


def _run(tmp_path, name, kernel, **params):
    out = tmp_path / name
    run_notebook("probe", out / "probe.ipynb", parameters=params, progress=False, html=False, kernel=kernel)
    report = json.loads((out / "report.json").read_text())
    counts = [c.execution_count for c in nbformat.read(out / "probe.ipynb", as_version=4).cells]
    return report, counts


def test_warm_kernel_runs_notebooks_in_a_clean_namespace(tmp_path, monkeypatch):
    _notebook(tmp_path / "nbs")
    monkeypatch.setenv("MTDTL_NOTEBOOKS", str(tmp_path / "nbs"))
    with WarmKernel(env={"MTDTL_WARM_TEST": "yes"}, max_notebooks=3, imports=("colorsys",)) as k:
        a, counts_a = _run(tmp_path, "a", k, value=1)
        client = k.kc
        b, counts_b = _run(tmp_path, "b", k, value=2)
        # the kernel's one client serves the resets and papermill, and stays connected
        assert client is not None and k.kc is client and client.channels_running
        # the preloaded modules' objects are out of the collector's way (gc.freeze)
        assert a["frozen"] > 1000 and b["frozen"] == a["frozen"]
        # one kernel, imports kept, environment as given, namespace and counter fresh, cwd moved
        assert a["pid"] == b["pid"] and k.starts == 1
        assert not a["leftover"] and not b["leftover"], "a variable of the previous notebook survived"
        assert b["preloaded"] and b["env"] == "yes" and b["value"] == 2
        assert os.path.samefile(b["cwd"], tmp_path / "b")
        assert counts_a == counts_b == list(range(1, len(counts_a) + 1)), "cell numbers start at 1"
        # a failing notebook: the error reaches the caller, the next notebook gets a new kernel
        with pytest.raises(MtdtlError, match="asked to fail"):
            _run(tmp_path, "c", k, fail=True)
        d, _ = _run(tmp_path, "d", k)
        assert d["pid"] != b["pid"] and k.starts == 2 and not d["leftover"]
        # after max_notebooks a new kernel
        _run(tmp_path, "e", k)
        _run(tmp_path, "f", k)
        g, _ = _run(tmp_path, "g", k)
        assert g["pid"] != d["pid"] and k.starts == 3
        # a kernel that died is replaced
        os.kill(g["pid"], 9)
        # its client notices within a second (not after the set-up code's timeout)
        with pytest.raises(MtdtlError, match="died"):
            k._execute("pass", timeout=60)
        h, _ = _run(tmp_path, "h", k)
        assert h["pid"] != g["pid"] and k.starts == 4
    assert k.km is None and k.kc is None


def test_warm_kernel_per_thread_and_environment():
    try:
        a = warm_kernel(env={"X": "1"})
        assert warm_kernel(env={"X": "1"}) is a
        assert warm_kernel(env={"X": "2"}) is not a
        assert shutdown_warm_kernels() == 0  # none was started
    finally:
        shutdown_warm_kernels()
    with pytest.raises(MtdtlError, match="at least 1"):
        WarmKernel(max_notebooks=0)
