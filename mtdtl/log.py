"""Logging helpers: the library logs, it never prints.

Levels, from quiet to chatty: ``WARNING`` (problems only), ``INFO`` (the narrative: a few lines
per stage, the default of the CLI and the notebooks), ``DETAIL`` (also the per-item lines:
every source reduced, every target's split, ...), ``DEBUG`` (everything).

A module writes a detail line with ``log.log(DETAIL, ...)``. The INFO lines of the loggers in
:data:`DETAIL_LOGGERS` also count as details: they are shown at ``DETAIL`` and ``DEBUG``, not at
``INFO``.

:func:`setup_logging` sends the records through :func:`tqdm.tqdm.write`, so log lines never cut
through a text progress bar in a terminal. In a notebook (an IPython kernel) the narrative goes
to stdout as plain lines (normal output), and warnings and errors go to stderr (where
JupyterLab shows them in red, as warnings).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["get_logger", "setup_logging", "DETAIL", "DETAIL_LOGGERS", "in_notebook"]

_ROOT = "mtdtl"

#: Level between DEBUG (10) and INFO (20) for per-item progress lines.
DETAIL = 15
logging.addLevelName(DETAIL, "DETAIL")

#: Loggers whose INFO records are details (per source, per target, per recommendation run):
#: the narrative at INFO stays a few lines per stage; ``setup_logging("DETAIL")`` shows them.
DETAIL_LOGGERS = (
    "mtdtl.store.build",           # bookkeeping of a store build (clips requested, done, frames, MB)
    "mtdtl.sources.reduce",        # one line per learning source ("already reduced, loaded ...")
    "mtdtl.targets",               # one line per target dataset and its split
    "mtdtl.evaluation.recommend",  # repeats the nDCG that mtdtl.transfer reports
)


def get_logger(name: str) -> logging.Logger:
    """Logger under the ``mtdtl`` hierarchy (``name`` is usually ``__name__``)."""
    if name == _ROOT or name.startswith(_ROOT + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_ROOT}.{name}")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (stdout is ipykernel's stream)."""
    return type(sys.stdout).__module__.startswith("ipykernel")


def _level(level: int | str) -> int:
    if isinstance(level, str):
        name = level.strip().upper()
        value = logging.getLevelName(name)
        if not isinstance(value, int):
            raise ValueError(f"unknown log level {level!r}; use WARNING, INFO, DETAIL or DEBUG")
        return value
    return int(level)


def _effective_level(record: logging.LogRecord) -> int:
    if record.levelno == logging.INFO and (
            record.name in DETAIL_LOGGERS or record.name.startswith(tuple(n + "." for n in DETAIL_LOGGERS))):
        return DETAIL
    return record.levelno


class _Handler(logging.Handler):
    """Writes through ``tqdm.write`` (bars are cleared and redrawn around the line).

    The stream is looked up at every record (``sys.stdout`` / ``sys.stderr`` of the moment),
    so the handler follows a notebook kernel's per-cell streams and pytest's capture.
    """

    _mtdtl = True

    def __init__(self, *, notebook: bool, threshold: int) -> None:
        super().__init__()
        self.notebook = notebook
        self.threshold = threshold
        self._notebook_info = logging.Formatter("%(message)s")
        self._notebook_warn = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        self._terminal = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")

    def filter(self, record: logging.LogRecord) -> bool:
        return _effective_level(record) >= self.threshold and super().filter(record)

    def format(self, record: logging.LogRecord) -> str:
        if not self.notebook:
            return self._terminal.format(record)
        if record.levelno >= logging.WARNING:
            return self._notebook_warn.format(record)
        return self._notebook_info.format(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            stream = sys.stderr if (record.levelno >= logging.WARNING or not self.notebook) else sys.stdout
            try:
                from tqdm import tqdm

                tqdm.write(msg, file=stream)
            except ImportError:  # pragma: no cover - tqdm is a dependency
                stream.write(msg + "\n")
            stream.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(level: int | str = logging.INFO, *, notebook: bool | None = None) -> None:
    """Show mtdtl's log records (used by the CLI and the notebooks).

    Parameters
    ----------
    level : int or str
        ``"WARNING"``, ``"INFO"`` (a few lines per stage), ``"DETAIL"`` (also per-item lines)
        or ``"DEBUG"``.
    notebook : bool, optional
        Notebook style: records below WARNING to stdout as bare messages, warnings to stderr.
        Default: detected (:func:`in_notebook`). Otherwise every record goes to stderr with
        time, level and logger name.

    Calling it again replaces the previous mtdtl handler (a notebook cell re-run does not
    duplicate lines).
    """
    threshold = _level(level)
    notebook = in_notebook() if notebook is None else bool(notebook)
    logger = logging.getLogger(_ROOT)
    for h in list(logger.handlers):
        if getattr(h, "_mtdtl", False):
            logger.removeHandler(h)
    logger.addHandler(_Handler(notebook=notebook, threshold=threshold))
    logger.setLevel(threshold)  # INFO records of DETAIL_LOGGERS pass here; the handler drops them
