"""The walkthrough as a reader sees it: JupyterLab in a real browser (headless Chromium).

JupyterLab starts on a free port, with a token, in a temporary folder holding the three
notebooks, their parameters cells followed by tiny parameters (the cell papermill would inject)
pointing at the tiny corpus and a copy of its store. Each notebook is opened and run with
"Run All" in the browser, then checked in the page: no error output, no stderr output (a
normal run), every figure-making cell shows an image, progress bars are widgets, the results
table fits a 1,400-px window, nothing is written next to the notebooks. Screenshots go to
``$MTDTL_SCREENSHOTS`` (or the test's temporary folder): look at them.

Needs Chromium (``apt-get install chromium``) and Playwright (``pip install playwright``; no
``playwright install``: the system Chromium is used). Skipped when either is missing. Run:

    .venv/bin/python -m pytest tests/test_browser.py -p no:cacheprovider -s
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("MTDTL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TOKEN = "mtdtl-browser-test"
VIEWPORT = {"width": 1400, "height": 900}
RUN_TIMEOUT_S = 900

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(folder: Path) -> None:
    """JupyterLab user settings for the test: no news or update checks (no network, no toasts)."""
    f = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@pytest.fixture(scope="module")
def lab(tiny_corpus, tiny_store, tmp_path_factory):
    """A running JupyterLab serving the three notebooks with tiny parameters; yields (url, root, work)."""
    import papermill.iorw
    import papermill.parameterize

    from mtdtl.notebooks import notebook_path

    base = tmp_path_factory.mktemp("browser")
    root, work = base / "lab", base / "work"
    root.mkdir()
    work.mkdir()
    store = work / "store"
    shutil.copytree(tiny_store, store)
    params = {
        "01_preprocess": {"corpus": str(tiny_corpus), "store": str(store), "n_components": 8},
        "02_train": {"store": str(store), "sources": "self,bpm,tag", "width": "tiny", "epochs": 2, "batch_size": 8,
                     "out_dir": str(work / "train")},
        "03_evaluate": {"run_dir": str(work / "train"), "corpus": str(tiny_corpus), "repetitions": 2,
                        "out_dir": str(work / "evaluate")},
    }
    for name, p in params.items():
        nb = papermill.iorw.load_notebook_node(str(notebook_path(name)))  # as papermill reads it
        nb = papermill.parameterize.parameterize_notebook(nb, p)
        nbformat.write(nb, root / f"{name}.ipynb")
    for sub in ("settings", "workspaces", "runtime", "config", "data"):
        (base / sub).mkdir()
    _settings(base / "settings")
    port = _free_port()
    env = {**os.environ, "MTDTL_DATA_DIR": str(work / "data"), "MTDTL_NUM_THREADS": "2",
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_DATA_DIR": str(base / "data")}
    log = open(base / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--LabApp.extension_manager=readonly", "--ServerApp.open_browser=False"]
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start; see {base / 'jupyterlab.log'}:\n"
                                   + (base / "jupyterlab.log").read_text()[-3000:])
            time.sleep(1)
        yield url, root, work
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("MTDTL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


# JavaScript run in the page (window.jupyterapp: --LabApp.expose_app_in_browser)
_READY = """(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && w.context && w.context.path === path && w.content && w.content.model); }"""
_STATE = """() => { const w = window.jupyterapp.shell.currentWidget; const cells = w.content.model.cells;
  let pending = 0, errors = [];
  for (let i = 0; i < cells.length; i++) { const c = cells.get(i); if (c.type !== 'code') continue;
    if (c.executionCount === null) pending++;
    for (let j = 0; j < c.outputs.length; j++) { const o = c.outputs.get(j);
      if (o.type === 'error') errors.push(i + ': ' + JSON.stringify(o.toJSON()).slice(0, 500)); } }
  const status = w.sessionContext.session.kernel.status;
  return {pending, errors, status}; }"""
_CELLS = """() => { const w = window.jupyterapp.shell.currentWidget; const cells = w.content.model.cells; const out = [];
  for (let i = 0; i < cells.length; i++) { const c = cells.get(i);
    out.push({i, type: c.type, source: c.sharedModel.getSource()}); } return out; }"""
_SCROLL = """async (i) => { const w = window.jupyterapp.shell.currentWidget;
  await w.content.scrollToItem(i, 'start'); return true; }"""
_CELL_NODE = "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].node"


def _run_all(page, url: str, name: str, shots: Path) -> list[dict]:
    # ?reset: a fresh workspace, only this notebook open (not the tabs of the previous ones)
    page.goto(f"{url}/lab/tree/{name}.ipynb?reset&token={TOKEN}")
    page.wait_for_function(_READY, arg=f"{name}.ipynb", timeout=180_000)
    page.screenshot(path=str(shots / f"{name}-0-opened.png"))
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        page.wait_for_timeout(2000)
        st = page.evaluate(_STATE)
        assert not st["errors"], f"{name}: error output: {st['errors']}"
        if st["pending"] == 0 and st["status"] == "idle":
            break
        assert time.monotonic() < deadline, f"{name}: Run All did not finish in {RUN_TIMEOUT_S} s ({st})"
    page.wait_for_timeout(1500)  # last renderers (images, widgets)
    return page.evaluate(_CELLS)


def _cell(page, i: int):
    page.evaluate(_SCROLL, i)
    page.wait_for_timeout(400)
    return page.evaluate_handle(_CELL_NODE, i).as_element()


def _check_notebook(page, url, name, shots, *, bars: bool):
    cells = _run_all(page, url, name, shots)
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
    # a normal run: no stderr (and no error) output anywhere
    stderr = notebook.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert stderr.count() == 0, f"{name}: stderr output: {stderr.all_inner_texts()[:3]}"
    text = notebook.inner_text()
    assert "IProgress not found" not in text and "Error displaying widget" not in text
    # every figure-making cell shows an image, rendered
    figure_cells = [c["i"] for c in cells if c["type"] == "code" and "save_figure(" in c["source"]]
    assert figure_cells
    for k, i in enumerate(figure_cells):
        node = _cell(page, i)
        sizes = node.evaluate("n => Array.from(n.querySelectorAll('.jp-OutputArea-output img'))"
                              ".map(im => [im.complete, im.naturalWidth, im.getBoundingClientRect().width])")
        assert len(sizes) == 1 and sizes[0][0] and sizes[0][1] > 0, f"{name}: cell {i} shows {sizes}"
        assert sizes[0][2] > 300, f"{name}: figure of cell {i} drawn {sizes[0][2]:.0f} px wide"
        node.screenshot(path=str(shots / f"{name}-fig{k + 1}.png"))
    # progress bars are widgets
    if bars:
        n_bars = notebook.locator(".widget-hprogress").count()
        assert n_bars >= 1, f"{name}: no progress-bar widget"
    # the closing summary
    last = max(c["i"] for c in cells if c["type"] == "code")
    node = _cell(page, last)
    assert "Findings" in node.inner_text()
    node.screenshot(path=str(shots / f"{name}-summary.png"))
    return cells


def _shutdown(page) -> None:
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")


@pytest.mark.timeout(3600)
def test_walkthrough_in_jupyterlab(lab, browser, shots):
    url, root, work = lab
    before = sorted(p.name for p in root.iterdir())
    page = browser.new_page(viewport=VIEWPORT)
    try:
        _check_notebook(page, url, "01_preprocess", shots, bars=True)
        _shutdown(page)
        cells = _check_notebook(page, url, "02_train", shots, bars=True)
        net = next(c["i"] for c in cells if "network_summary(" in c["source"])
        node = _cell(page, net)
        assert "k = 8 outputs per head" in node.inner_text()
        node.screenshot(path=str(shots / "02_train-network.png"))
        _shutdown(page)
        cells = _check_notebook(page, url, "03_evaluate", shots, bars=True)
        piv = next(c["i"] for c in cells if "results_pivot(" in c["source"])
        node = _cell(page, piv)
        widths = node.evaluate("n => { const t = n.querySelector('.jp-OutputArea-output table');"
                               " const o = t.closest('.jp-OutputArea-output'); return [t.getBoundingClientRect().width,"
                               " o.getBoundingClientRect().width, o.scrollWidth, o.clientWidth]; }")
        assert widths[0] <= widths[1] and widths[2] <= widths[3] + 1, f"results table too wide: {widths}"
        assert "learned (MS-CR@6, 3 src)" in node.inner_text()
        bold = node.evaluate("n => { const rows = n.querySelectorAll('.jp-OutputArea-output table')[0]"
                             ".querySelectorAll('tbody tr'); let ok = 0; rows.forEach(r => {"
                             " if (Array.from(r.querySelectorAll('td')).some(td => td.querySelector('b')"
                             " && parseInt(getComputedStyle(td.querySelector('b')).fontWeight) >= 600)) ok++; });"
                             " return [ok, rows.length]; }")
        assert bold[0] == bold[1] > 0, f"the best of each row is not bold: {bold}"
        node.screenshot(path=str(shots / "03_evaluate-pivot.png"))
    finally:
        page.close()
    # nothing lands next to the notebooks (the kernel's working directory)
    extra = sorted(p.name for p in root.iterdir() if p.name not in before
                   and p.name not in (".ipynb_checkpoints", ".virtual_documents"))
    assert extra == [], f"files written next to the notebooks: {extra}"
    assert (work / "evaluate" / "figures" / "transfer_vs_baselines.png").is_file()
