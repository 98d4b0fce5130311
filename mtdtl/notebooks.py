"""Running mtdtl's notebooks with papermill.

The ordered walkthrough notebooks each have one cell tagged ``parameters``. They live in
``notebooks/`` of a source checkout and ship inside the package as ``mtdtl/data/notebooks/``
(the same files, written by ``scripts/build_notebooks.py``), so ``mtdtl demo`` also works after
a plain ``pip install``. :func:`run_notebook` executes one of them with parameters into an
output folder and writes an HTML copy beside the executed notebook; :func:`notebooks_dir`
finds them.
"""

from __future__ import annotations

import atexit
import copy
import html as _html
import json
import logging
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["NOTEBOOKS", "notebooks_dir", "notebook_path", "run_notebook", "html_path", "write_html",
           "finalize_progress_bars", "WarmKernel", "warm_kernel", "shutdown_warm_kernels"]

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


# ---------------------------------------------------------------------------------------
# a warm kernel: one kernel for many notebooks (sweeps)
# ---------------------------------------------------------------------------------------

#: What a warm kernel imports once, when it starts: the modules every walkthrough notebook's
#: first cell imports, which cost seconds in each fresh kernel (torch, pandas, matplotlib, mtdtl).
WARM_IMPORTS = ("torch", "numpy", "pandas", "matplotlib.pyplot", "IPython.display", "mtdtl.models",
                "mtdtl.plots", "mtdtl.report", "mtdtl.training", "mtdtl.transfer", "mtdtl.walkthrough",
                "mtdtl.evaluation.reference", "mtdtl.paths", "mtdtl.runs")

# after the warm imports: what they allocated leaves the collector's generations for good
_FREEZE_CODE = """
import gc as _gc
_gc.collect()
_gc.freeze()
del _gc
"""

_RESET_CODE = """
get_ipython().run_line_magic("reset", "-f")
import gc as _gc, os as _os
try:
    import matplotlib.pyplot as _plt
    _plt.close("all")
    del _plt
except ImportError:
    pass
_os.chdir({cwd!r})
get_ipython().execution_count = 1
_gc.collect()
del _gc, _os
"""


class WarmKernel:
    """One Jupyter kernel that runs many notebooks in turn, each in a clean namespace.

    A sweep runs two notebooks per run; in a fresh kernel each pays the kernel's start and the
    imports of torch, pandas, matplotlib and mtdtl (seconds, more than a debug run trains). A
    warm kernel pays them once: it starts with :data:`WARM_IMPORTS` imported, and before each
    notebook its user namespace is emptied (IPython's ``%reset -f``: variables, ``In``/``Out``),
    its figures closed, its working directory set and its cell counter restarted at 1, so every
    notebook runs its own cells from a clean namespace, as in a new kernel. What does persist is
    process state outside the namespace: imported modules (the point), torch's thread settings
    and random generators (every notebook seeds its own work), and the kernel's environment,
    which is fixed when it starts (a kernel is kept per environment).

    The kernel is replaced by a new one after ``max_notebooks`` notebooks (memory a notebook
    leaves behind cannot pile up), after a notebook failed, and when it died.

    Parameters
    ----------
    kernel_name : str
        The Jupyter kernel.
    env : dict, optional
        Environment variables of the kernel, on top of this process's environment (a value of
        None removes a variable).
    max_notebooks : int
        Notebooks before the kernel is replaced by a new one (>= 1).
    imports : tuple of str
        Modules imported when the kernel starts.
    """

    def __init__(self, kernel_name: str = "python3", *, env: dict[str, str] | None = None,
                 max_notebooks: int = 20, imports: tuple[str, ...] = WARM_IMPORTS):
        if max_notebooks < 1:
            raise MtdtlError(f"max_notebooks must be at least 1, got {max_notebooks}")
        self.kernel_name = kernel_name
        self.env = {k: (None if v is None else str(v)) for k, v in (env or {}).items()}
        self.max_notebooks = int(max_notebooks)
        self.imports = tuple(imports)
        self.km = None
        self.kc = None  # the kernel's one client: resets and papermill's notebooks share it
        self.notebooks = 0  # run by the current kernel
        self.starts = 0  # kernels started so far
        self._dirty = False

    # -- life cycle ---------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.km is not None and self.km.has_kernel and self.km.is_alive()

    def start(self) -> None:
        """Start the kernel (a running one is shut down first), connect its client and import
        :attr:`imports`; the objects of those imports are then frozen out of the garbage
        collector (``gc.freeze``), so that the full collections of the notebooks' resets and of
        their own cells no longer walk torch's and pandas' module objects."""
        from jupyter_client.manager import KernelManager

        self.shutdown()
        km = KernelManager(kernel_name=self.kernel_name)
        env = {**os.environ, **self.env}
        km.start_kernel(extra_arguments=list(KERNEL_ARGUMENTS),
                        env={k: v for k, v in env.items() if v is not None})
        self.km, self.notebooks, self._dirty = km, 0, False
        self.starts += 1
        kc = km.client()
        kc.start_channels()
        self.kc = kc
        try:
            kc.wait_for_ready(timeout=120)
        except Exception as err:  # noqa: BLE001 - a kernel that does not come up
            self.shutdown()
            raise MtdtlError(f"the warm kernel did not start: {err}") from err
        kc.allow_stdin = False
        code = "\n".join(f"import {m}" for m in self.imports)
        try:
            self._execute(code + _FREEZE_CODE, timeout=300)
        except MtdtlError as err:  # an import that fails here fails visibly in the notebook
            log.debug("warm kernel: preloading failed (%s); the notebooks import what they need", err)
        log.debug("warm kernel %s started (pid %s)", self.starts, self._pid())

    def shutdown(self) -> None:
        """Stop the kernel and its client, if one runs."""
        km, self.km = self.km, None
        kc, self.kc = self.kc, None
        if kc is not None:
            try:
                kc.stop_channels()
            except Exception as err:  # noqa: BLE001
                log.debug("warm kernel: stopping the client: %s", err)
        if km is None:
            return
        try:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
        except Exception as err:  # noqa: BLE001 - a dead kernel is already what we want
            log.debug("warm kernel: shutdown: %s", err)
        finally:
            try:
                km.cleanup_resources()
            except Exception:  # noqa: BLE001
                pass

    def _pid(self):
        try:
            return self.km.provisioner.process.pid  # type: ignore[union-attr]
        except AttributeError:
            return None

    def _execute(self, code: str, *, timeout: float = 120) -> None:
        """Run ``code`` in the kernel outside any notebook, through the kernel's one client
        (connected once, so no per-call channel set-up and ready wait); raise
        :class:`MtdtlError` on error, on a timeout, and within a second when the kernel dies."""
        try:
            msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False)
        except Exception as err:  # noqa: BLE001 - closed channels
            raise MtdtlError(f"the warm kernel did not run its set-up code: {err}") from err
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise MtdtlError("the warm kernel died")
            left = deadline - time.monotonic()
            if left <= 0:
                raise MtdtlError(f"the warm kernel did not run its set-up code within {timeout:.0f} s")
            try:
                reply = self.kc.get_shell_msg(timeout=min(1.0, left))
            except queue.Empty:
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
        content = reply.get("content", {})
        if content.get("status") != "ok":
            raise MtdtlError(f"the warm kernel's set-up code failed: {content.get('ename')}: {content.get('evalue')}")

    def prepare(self, cwd: str | Path) -> None:
        """Make the kernel ready for the next notebook: start or replace it where needed, then
        empty its namespace and move it to ``cwd``."""
        if self.km is None or self._dirty or self.notebooks >= self.max_notebooks or not self.alive:
            self.start()
        try:
            self._execute(_RESET_CODE.format(cwd=str(Path(cwd).resolve())))
        except MtdtlError as err:
            log.debug("warm kernel: reset failed (%s); starting a new kernel", err)
            self.start()
            self._execute(_RESET_CODE.format(cwd=str(Path(cwd).resolve())))
        self.notebooks += 1

    def failed(self) -> None:
        """The last notebook failed: its kernel is replaced before the next one."""
        self._dirty = True

    def __enter__(self) -> WarmKernel:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        try:
            self.shutdown()
        except Exception:  # noqa: BLE001
            pass


_WARM: dict[tuple, WarmKernel] = {}
_WARM_LOCK = threading.Lock()


def warm_kernel(kernel_name: str = "python3", *, env: dict[str, str] | None = None,
                max_notebooks: int = 20) -> WarmKernel:
    """The :class:`WarmKernel` of this thread for ``kernel_name`` and ``env`` (made on first use).

    A sweep's Dask worker runs one run at a time; keeping one warm kernel per thread and
    environment lets the worker's runs share it, and never lets two notebooks share a kernel at
    the same time.
    """
    env = {k: (None if v is None else str(v)) for k, v in (env or {}).items()}
    key = (threading.get_ident(), kernel_name, tuple(sorted(env.items(), key=lambda kv: kv[0])))
    with _WARM_LOCK:
        k = _WARM.get(key)
        if k is None:
            k = _WARM[key] = WarmKernel(kernel_name, env=env, max_notebooks=max_notebooks)
        k.max_notebooks = max(1, int(max_notebooks))
        return k


def shutdown_warm_kernels() -> int:
    """Stop every warm kernel of this process (e.g. at the end of a sweep); returns how many."""
    with _WARM_LOCK:
        kernels = list(_WARM.values())
        _WARM.clear()
    n = 0
    for k in kernels:
        if k.km is not None:
            n += 1
        k.shutdown()
    return n


atexit.register(shutdown_warm_kernels)

_ENGINE = "mtdtl-warm"


def _register_warm_engine() -> str:
    """A papermill engine that runs a notebook in a given, running kernel and leaves it running.

    papermill's own engine passes a given kernel manager on to nbclient, which then keeps the
    kernel but also its client's channels. This engine takes the warm kernel's own connected
    client (engine keyword ``warm_kc``) and leaves it open for the next notebook; a client
    nbclient had to make itself is closed after the notebook.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    if _ENGINE in papermill_engines._engines:
        return _ENGINE

    class _Client(PapermillNotebookClient):
        warm_kc = None  # the warm kernel's connected client, used instead of a new one

        def execute(self, **kwargs):
            if self.warm_kc is not None:
                self.kc = self.warm_kc  # nbclient then skips connecting and waiting for the kernel
            try:
                return super().execute(**kwargs)
            finally:
                if self.kc is not None and self.kc is not self.warm_kc:
                    self.kc.stop_channels()
                self.kc = None

    class _WarmEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs.pop("input_path", None)
            kwargs.pop("timeout", None)
            kwargs.pop("startup_timeout", None)
            warm_kc = kwargs.pop("warm_kc", None)
            client = _Client(nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
                             kernel_name=kernel_name, log=logging.getLogger("papermill"), log_output=log_output,
                             stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
            client.warm_kc = warm_kc
            return client.execute()

    papermill_engines.register(_ENGINE, _WarmEngine)
    return _ENGINE


def run_notebook(name: str, out_path: str | Path, *, parameters: dict[str, Any] | None = None,
                 cwd: str | Path | None = None, progress: bool = True,
                 kernel_name: str = "python3", html: bool = True, kernel: WarmKernel | None = None) -> Path:
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
    kernel : WarmKernel, optional
        Run in this kernel, started or reused (:class:`WarmKernel`), instead of a new one;
        ``kernel_name`` is then the warm kernel's.

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
    workdir = Path(cwd or out_path.parent)
    try:
        if kernel is None:
            pm.execute_notebook(str(src), str(out_path), parameters=params, kernel_name=kernel_name,
                                cwd=str(workdir), progress_bar=progress,
                                log_output=False, extra_arguments=list(KERNEL_ARGUMENTS))
        else:
            kernel.prepare(workdir)
            try:
                pm.execute_notebook(str(src), str(out_path.resolve()), parameters=params,
                                    kernel_name=kernel.kernel_name, engine_name=_register_warm_engine(),
                                    progress_bar=progress, log_output=False, km=kernel.km,
                                    warm_kc=kernel.kc)
            except BaseException:
                kernel.failed()
                raise
    except PapermillExecutionError as e:
        if out_path.is_file():
            _postprocess(out_path, html_copy=html)
        where = f"{out_path}" + (f" (HTML: {html_path(out_path)})" if html else "")
        raise MtdtlError(f"{src.name} failed in cell {e.exec_count} ({e.ename}: {e.evalue}); "
                         f"the executed notebook with the traceback is {where}") from e
    _postprocess(out_path, html_copy=html)
    return out_path
