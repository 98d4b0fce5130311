"""What every figure of the walkthrough shares: the house style, display and saving.

- :func:`new_figure`: a bare :class:`matplotlib.figure.Figure` (no pyplot state: nothing is
  shown twice, nothing leaks across cells) in the house style (:data:`STYLE`: fonts readable on
  a laptop screen without zooming). Inside a Jupyter kernel it also makes sure figures display
  as images (PNG at twice the pixel density), with or without ``%matplotlib inline``: a cell
  whose last expression is a figure shows it, in JupyterLab, in papermill's executed copies and
  in their HTML copies.
- :func:`save_figure`: the figure as ``<stem>.png`` and ``<stem>.pdf`` (atomic writes).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from mtdtl.errors import MtdtlError

__all__ = ["STYLE", "MAX_WIDTH_IN", "FIGURE_FORMATS", "new_figure", "save_figure", "style", "enable_inline_display"]

#: matplotlib settings of every walkthrough figure. At 100 dpi a 10 pt font is about 14 px,
#: legible on a laptop with the figure at its natural size.
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 10.5,
    "axes.titlesize": 11,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9.5,
    "figure.titlesize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

#: Widest figure (inches at 100 dpi): fits a notebook's output area in a 1,400-px window
#: with the file browser open, so JupyterLab never shrinks it (and its fonts).
MAX_WIDTH_IN = 9.6


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context in which figures are made (text objects take their sizes when created)."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def enable_inline_display() -> bool:
    """In a Jupyter kernel: show matplotlib figures as PNG images when they are displayed.

    Returns whether a kernel was found. Harmless to call again; outside IPython it does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return False
    ip = get_ipython()
    if ip is None or not hasattr(ip, "display_formatter"):
        return False
    from matplotlib.figure import Figure

    fmt = ip.display_formatter.formatters.get("image/png")
    if fmt is None:  # pragma: no cover
        return False
    if Figure not in fmt.type_printers:  # not yet (by us, or by %matplotlib inline)
        from IPython.core.pylabtools import select_figure_formats

        select_figure_formats(ip, {"retina"}, bbox_inches="tight")
    return True


def new_figure(width: float, height: float, **kwargs):
    """A bare Figure of ``width`` x ``height`` inches in the house style.

    ``width`` is capped at :data:`MAX_WIDTH_IN`. Keyword arguments go to
    :class:`matplotlib.figure.Figure` (default ``layout="constrained"``). Make the axes and
    text inside ``with style():`` so that they take the house font sizes.
    """
    from matplotlib.figure import Figure

    enable_inline_display()
    kwargs.setdefault("layout", "constrained")
    with style():
        return Figure(figsize=(min(float(width), MAX_WIDTH_IN), float(height)), **kwargs)


#: The formats :func:`save_figure` writes.
FIGURE_FORMATS = ("png", "pdf", "svg")


def save_figure(fig, path_stem: str | os.PathLike, *, formats: str | Sequence[str] = ("png", "pdf"),
                dpi: int | None = None) -> list[Path]:
    """Write ``fig`` as ``<path_stem>.png`` and ``<path_stem>.pdf`` (atomically, folders created).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path_stem : str or PathLike
        Path without extension (an extension given is replaced).
    formats : str or sequence of str
        Among :data:`FIGURE_FORMATS`; a string is comma-separated (``"png,pdf"``), as the
        notebooks' ``figure_formats`` parameter passes it. A PDF costs about as much again as
        the PNG (sweeps write PNG only).
    dpi : int, optional
        Resolution of raster formats (default :data:`STYLE`'s ``savefig.dpi``, 200).

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``formats``.
    """
    from mtdtl.io import atomic_write_bytes

    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = [str(f).lower() for f in formats]
    bad = sorted(set(formats) - set(FIGURE_FORMATS))
    if bad or not formats:
        raise MtdtlError(f"save_figure: formats {bad or formats} not among {', '.join(FIGURE_FORMATS)}")
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".pdf", ".svg"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi or STYLE["savefig.dpi"], bbox_inches="tight")
        path = stem.with_name(f"{stem.name}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        out.append(path)
    return out
