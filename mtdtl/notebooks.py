"""Running mtdtl's notebooks with papermill.

The ordered notebooks in ``notebooks/`` walk through the study; each has one cell
tagged ``parameters``. :func:`run_notebook` executes one of them with parameters into
an output folder (executed copies live under ``papermill_runs/`` or a run folder), and
:func:`notebook_path` finds the notebooks of this checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["NOTEBOOKS", "notebooks_dir", "notebook_path", "run_notebook"]

log = get_logger(__name__)

#: The walkthrough's notebooks, in order.
NOTEBOOKS = ("01_preprocess", "02_train", "03_evaluate")


def notebooks_dir() -> Path:
    """The ``notebooks/`` folder of this checkout (``$MTDTL_NOTEBOOKS`` overrides it)."""
    env = os.environ.get("MTDTL_NOTEBOOKS")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "notebooks"
    if not path.is_dir():
        raise MtdtlError(
            f"notebooks folder not found at {path}: mtdtl's notebooks ship with the source "
            "checkout (pip install -e .); set MTDTL_NOTEBOOKS to their folder otherwise")
    return path


def notebook_path(name: str) -> Path:
    """Path of notebook ``name`` (``"02_train"`` or ``"02_train.ipynb"``)."""
    stem = name[:-6] if name.endswith(".ipynb") else name
    path = notebooks_dir() / f"{stem}.ipynb"
    if not path.is_file():
        valid = sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))
        raise MtdtlError(f"unknown notebook {name!r}; valid: {', '.join(valid)}")
    return path


def run_notebook(name: str, out_path: str | Path, *, parameters: dict[str, Any] | None = None,
                 cwd: str | Path | None = None, progress: bool = True,
                 kernel_name: str = "python3") -> Path:
    """Execute notebook ``name`` with papermill into ``out_path``.

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
                            log_output=False)
    except PapermillExecutionError as e:
        raise MtdtlError(f"{src.name} failed in cell {e.exec_count} ({e.ename}: {e.evalue}); "
                         f"the executed notebook with the traceback is {out_path}") from e
    return out_path
