"""Running mtdtl's notebooks with papermill.

The ordered walkthrough notebooks each have one cell tagged ``parameters``. They live in
``notebooks/`` of a source checkout and ship inside the package as ``mtdtl/data/notebooks/``
(the same files, written by ``scripts/build_notebooks.py``), so ``mtdtl demo`` also works after
a plain ``pip install``. :func:`run_notebook` executes one of them with parameters into an
output folder and writes an HTML copy beside the executed notebook; :func:`notebooks_dir`
finds them.
"""

from __future__ import annotations

import copy
import html as _html
import json
import os
import re
from pathlib import Path
from typing import Any

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["NOTEBOOKS", "notebooks_dir", "notebook_path", "run_notebook", "html_path", "write_html",
           "finalize_progress_bars"]

log = get_logger(__name__)

#: The walkthrough's notebooks, in order.
NOTEBOOKS = ("01_preprocess", "02_train", "03_evaluate")

_PACKAGE_NOTEBOOKS = Path(__file__).resolve().parent / "data" / "notebooks"
_CHECKOUT = Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    """Folder of the walkthrough notebooks.

    ``$MTDTL_NOTEBOOKS`` when set; else ``notebooks/`` of the source checkout this package runs
    from (an editable install); else the copies shipped in the package (``mtdtl/data/notebooks``).
    """
    env = os.environ.get("MTDTL_NOTEBOOKS")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise MtdtlError(f"MTDTL_NOTEBOOKS={env}: no such folder; unset it to use mtdtl's own notebooks")
        return path
    checkout = _CHECKOUT / "notebooks"
    if (_CHECKOUT / "pyproject.toml").is_file() and checkout.is_dir() and any(checkout.glob("*.ipynb")):
        return checkout
    if _PACKAGE_NOTEBOOKS.is_dir() and any(_PACKAGE_NOTEBOOKS.glob("*.ipynb")):
        return _PACKAGE_NOTEBOOKS
    raise MtdtlError(
        f"mtdtl's notebooks were found neither in a source checkout ({checkout}) nor in the package "
        f"({_PACKAGE_NOTEBOOKS}); reinstall mtdtl, or set MTDTL_NOTEBOOKS to a folder holding them")


def notebook_path(name: str) -> Path:
    """Path of notebook ``name`` (``"02_train"`` or ``"02_train.ipynb"``)."""
    stem = name.removesuffix(".ipynb")
    folder = notebooks_dir()
    path = folder / f"{stem}.ipynb"
    if not path.is_file():
        valid = sorted(p.stem for p in folder.glob("*.ipynb"))
        raise MtdtlError(f"unknown notebook {name!r}; valid: {', '.join(valid)}")
    return path


def html_path(out_path: str | os.PathLike) -> Path:
    """Where :func:`run_notebook` writes the HTML copy of an executed notebook."""
    return Path(out_path).with_suffix(".html")


# ---------------------------------------------------------------------------------------
# progress bars (tqdm widgets) in executed notebooks
# ---------------------------------------------------------------------------------------

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_TAG = re.compile(r"<[^>]+>")


def _plain(value: Any) -> str:
    return _html.unescape(_TAG.sub("", str(value or ""))).replace("\u2007", " ").strip()


def _bar_text(states: dict, model_id: str) -> str | None:
    """The final text of a tqdm notebook bar (HBox of HTML, progress, HTML) from widget state."""
    box = states.get(model_id, {})
    if box.get("model_name") != "HBoxModel":
        return None
    kids = [states.get(str(c).removeprefix("IPY_MODEL_"), {}) for c in box.get("state", {}).get("children", [])]
    names = [k.get("model_name") for k in kids]
    if len(kids) != 3 or names[0] != "HTMLModel" or names[1] not in ("FloatProgressModel", "IntProgressModel"):
        return None
    left, bar, right = (k.get("state", {}) for k in kids)
    total = bar.get("max") or 0
    frac = min(max(float(bar.get("value") or 0) / total, 0.0), 1.0) if total else 0.0
    filled = round(10 * frac)
    return f"{_plain(left.get('value'))}|{'█' * filled}{' ' * (10 - filled)}| {_plain(right.get('value'))}"


def finalize_progress_bars(nb) -> int:
    """Give every progress-bar widget output the bar's final text as its plain-text version.

    A tqdm bar in a notebook is a widget; its output keeps the text of the moment it was
    created ("0%") for viewers without the widget state. This replaces it with the final state
    recorded in the notebook's metadata ("100%| 12/12 [00:18<00:00, ...]"). Returns how many
    outputs changed.
    """
    states = nb.get("metadata", {}).get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    n = 0
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            view = data.get(_WIDGET_VIEW)
            if not view:
                continue
            text = _bar_text(states, view.get("model_id", ""))
            if text is not None and data.get("text/plain") != text:
                data["text/plain"] = text
                n += 1
    return n


def write_html(nb, path: str | os.PathLike) -> Path:
    """A self-contained HTML copy of an executed notebook (figures inline, bars as text).

    Widget outputs become their plain-text version (the final state of progress bars), so the
    page needs no widget JavaScript from the internet.
    """
    from nbconvert import HTMLExporter

    from mtdtl.io import atomic_write_text

    nb = copy.deepcopy(nb)
    finalize_progress_bars(nb)
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            if _WIDGET_VIEW in data:
                data.pop(_WIDGET_VIEW)
                data.setdefault("text/plain", "")
    nb.get("metadata", {}).pop("widgets", None)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    path = Path(path)
    atomic_write_text(path, body)
    return path


def _postprocess(out_path: Path, *, html_copy: bool) -> None:
    """Final bar texts in the executed notebook, then its HTML copy (failures only warn)."""
    import nbformat

    from mtdtl.io import atomic_write_text

    try:
        nb = nbformat.read(out_path, as_version=4)
        if finalize_progress_bars(nb):
            atomic_write_text(out_path, nbformat.writes(nb))
        if html_copy:
            write_html(nb, html_path(out_path))
    except Exception as err:  # the executed notebook is what matters; its copy must not hide it
        log.warning("could not write the HTML copy of %s: %s", out_path, err)


#: Arguments of every kernel started: its own log (e.g. the start-up warning about TCP transport
#: on a local kernel, one line per kernel on the terminal) only from errors up; cell outputs,
#: warnings included, are not affected.
KERNEL_ARGUMENTS = ("--log-level=ERROR",)


def run_notebook(name: str, out_path: str | Path, *, parameters: dict[str, Any] | None = None,
                 cwd: str | Path | None = None, progress: bool = True,
                 kernel_name: str = "python3", html: bool = True) -> Path:
    """Execute notebook ``name`` with papermill into ``out_path``, and write its HTML copy.

    Parameters
    ----------
    name : str
        Notebook stem, e.g. ``"02_train"``.
    out_path : str or Path
        Where the executed notebook is written (folders are created).
    parameters : dict
        Values for the notebook's ``parameters`` cell.
    cwd : str or Path, optional
        Working directory of the kernel (default: the output notebook's folder).
    progress : bool
        papermill's progress bar over the cells.
    html : bool
        Also write ``out_path`` with the suffix ``.html`` (:func:`html_path`): the executed
        notebook as a self-contained page, figures included. Written for failed runs too.

    Returns
    -------
    Path
        ``out_path``. A failing cell raises :class:`MtdtlError` naming the executed notebook,
        which keeps the traceback in its failing cell.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    src = notebook_path(name)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    params = dict(parameters or {})
    log.info("running %s -> %s with %s", src.name, out_path, json.dumps(params, default=str))
    try:
        pm.execute_notebook(str(src), str(out_path), parameters=params, kernel_name=kernel_name,
                            cwd=str(cwd or out_path.parent), progress_bar=progress,
                            log_output=False, extra_arguments=list(KERNEL_ARGUMENTS))
    except PapermillExecutionError as e:
        if out_path.is_file():
            _postprocess(out_path, html_copy=html)
        where = f"{out_path}" + (f" (HTML: {html_path(out_path)})" if html else "")
        raise MtdtlError(f"{src.name} failed in cell {e.exec_count} ({e.ename}: {e.evalue}); "
                         f"the executed notebook with the traceback is {where}") from e
    _postprocess(out_path, html_copy=html)
    return out_path
