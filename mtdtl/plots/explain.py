"""Figure 16 (Section 5.5): the t-SNE map of a target dataset with zoomed regions where each
learning source's strongest predicted topic terms are written next to a few tracks (06_explain).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtdtl.constants import SOURCE_NAMES
from mtdtl.errors import MtdtlError
from mtdtl.plots.base import MAX_WIDTH_IN, new_figure, style

__all__ = ["fig16_explain", "source_colors"]

#: Text corners of a zoom panel (axes fraction x, y, ha, va), in the order they are used.
_CORNERS = ((0.02, 0.98, "left", "top"), (0.98, 0.02, "right", "bottom"),
            (0.98, 0.98, "right", "top"), (0.02, 0.02, "left", "bottom"))
_REGION_NAMES = "ABCDEFGHIJ"


def source_colors(sources) -> dict[str, str]:
    """One colour per learning source, fixed by its place in :data:`SOURCE_NAMES` (Dark2)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    pal = colormaps["Dark2"].colors
    out = {}
    for s in sources:
        i = SOURCE_NAMES.index(s) if s in SOURCE_NAMES else len(SOURCE_NAMES) + len(out)
        out[s] = to_hex(pal[i % len(pal)])
    return out


def _label_colors(labels: pd.Series):
    """``(colors per point, legend [(label, colour)], colormap or None, norm or None)``."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize, to_hex

    if pd.api.types.is_numeric_dtype(labels):
        v = labels.to_numpy(dtype=np.float64)
        if not np.isfinite(v).any():  # recommendation targets: no label per track
            return np.array(["C0"] * len(v)), [], None, None
        cmap = colormaps["viridis"]
        norm = Normalize(np.nanmin(v), np.nanmax(v))
        cols = np.array([to_hex(cmap(norm(x))) if np.isfinite(x) else "0.7" for x in v])
        return cols, [], cmap, norm
    classes = sorted(labels.dropna().astype(str).unique())
    n = len(classes)
    if n <= 10:
        pal = [to_hex(c) for c in colormaps["tab10"].colors[:n]]
    elif n <= 20:
        pal = [to_hex(c) for c in colormaps["tab20"].colors[:n]]
    else:
        pal = [to_hex(colormaps["hsv"](i / n)) for i in range(n)]
    lut = dict(zip(classes, pal))
    cols = np.array([lut.get(str(x), "0.7") if pd.notna(x) else "0.7" for x in labels])
    return cols, list(lut.items()), None, None


def _pick_points(P: np.ndarray, idx: np.ndarray, center: np.ndarray, k: int, *, yscale: float = 1.0) -> list[int]:
    """``k`` points of ``idx`` spread out: the one nearest the centre, then farthest-point picks.

    ``yscale`` shrinks vertical distances as the zoom panel does (its text bands leave the
    points a flat strip), so that the picks are spread as the reader sees them."""
    if len(idx) == 0 or k < 1:
        return []
    Q = P[idx] * np.array([1.0, float(yscale)])
    center = np.asarray(center, dtype=np.float64) * np.array([1.0, float(yscale)])
    chosen = [int(np.argmin(((Q - center) ** 2).sum(1)))]
    while len(chosen) < min(k, len(idx)):
        d = np.min(((Q[:, None, :] - Q[None, chosen, :]) ** 2).sum(-1), axis=1)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
    return [int(idx[c]) for c in chosen]


def _short(term: str, n: int = 18) -> str:
    """A term in at most ``n`` characters; a path (``folk/irish/hornpipe``) keeps its last parts."""
    term = str(term)
    if len(term) > n and "/" in term:
        parts = [p for p in term.split("/") if p]
        kept = parts[-1]
        for p in reversed(parts[:-1]):
            if len(p) + 1 + len(kept) > n:
                break
            kept = f"{p}/{kept}"
        term = kept
    return term if len(term) <= n else term[:n - 1] + "…"


def fig16_explain(explanation, *, regions: pd.DataFrame | None = None, n_regions: int = 2,
                  region_size: float = 0.25, n_points: int = 2, n_terms: int = 3, sources=None,
                  title: str | None = None):
    """Figure 16: t-SNE map coloured by the target's label, with zoomed regions annotated.

    Parameters
    ----------
    explanation : mtdtl.explain.Explanation
    regions : DataFrame, optional
        Regions from :meth:`~mtdtl.explain.Explanation.zoom_regions` (default: the
        ``n_regions`` densest, ``region_size`` of the map wide).
    n_points : int
        Tracks annotated per zoomed region (spread over the region).
    n_terms : int
        Terms per source and track.
    sources : sequence of str, optional
        Sources whose terms are written (default: all explained ones).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left: the map, regions boxed and lettered; right: one zoomed panel per region, where
        numbered tracks carry one line per source (in that source's colour) with the terms
        of its strongest predicted topic.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    exp = explanation
    emb = exp.embedding
    if emb is None or len(emb) == 0:
        raise MtdtlError("the explanation has no tracks to plot")
    sources = list(exp.sources if sources is None else sources)
    for s in sources:
        if s not in exp.z:
            raise MtdtlError(f"no source {s!r} in this explanation; it has {list(exp.sources)}")
    if regions is None:
        regions = exp.zoom_regions(n_regions, size=region_size)
    regions = regions.reset_index(drop=True)
    n_reg = len(regions)
    scol = source_colors(sources)
    P = emb[["x", "y"]].to_numpy(dtype=np.float64)
    cols, legend, cmap, norm = _label_colors(emb["label"])
    size = float(np.clip(3000.0 / len(emb), 6, 40))

    # a zoom panel holds two bands of text (above and below the points) and the points between
    band_pt = int(np.ceil(max(1, n_points) / 2)) * ((1 + len(sources)) * _STEP + 3)
    panel_in = (2 * band_pt + 90) / 72.0 + 0.3
    fig = new_figure(MAX_WIDTH_IN, max(5.6, n_reg * panel_in + 1.0))
    with style():
        if n_reg:
            gs = fig.add_gridspec(n_reg, 2, width_ratios=[1.05, 1])
            ax = fig.add_subplot(gs[:, 0])
            zooms = [fig.add_subplot(gs[i, 1]) for i in range(n_reg)]
        else:
            ax, zooms = fig.add_subplot(1, 1, 1), []
        ax.scatter(P[:, 0], P[:, 1], c=cols, s=size, linewidths=0, alpha=0.85)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_title(title or f"{exp.target} in {exp.run}", fontsize=10)
        if cmap is not None:
            from matplotlib.cm import ScalarMappable

            fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6, label=f"{exp.target} label")

        panels = []
        for r, zx in zip(regions.itertuples(index=False), zooms):
            name = _REGION_NAMES[(int(r.region) - 1) % len(_REGION_NAMES)]
            ax.add_patch(Rectangle((r.x0, r.y0), r.x1 - r.x0, r.y1 - r.y0, fill=False, lw=1.0, ec="0.15"))
            ax.text(r.x0, r.y1, f" {name}", ha="left", va="bottom", fontsize=9, fontweight="bold")
            inside = np.flatnonzero((P[:, 0] >= r.x0) & (P[:, 0] <= r.x1) & (P[:, 1] >= r.y0) & (P[:, 1] <= r.y1))
            zx.scatter(P[inside, 0], P[inside, 1], c=cols[inside], s=size * 2.5, linewidths=0, alpha=0.55)
            zx.set_xlim(r.x0, r.x1)
            zx.set_ylim(r.y0, r.y1)
            zx.set_xticks([])
            zx.set_yticks([])
            for sp in zx.spines.values():
                sp.set_visible(True)
                sp.set_color("0.15")
            top = getattr(r, "top_label", np.nan)
            sub = f", mostly {top} ({r.label_share:.0%})" if isinstance(top, str) else ""
            zx.set_title(f"{name}: {int(r.n_tracks)} tracks{sub}", fontsize=9, loc="left")
            center = np.array([(r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2])
            # the points' strip: about 90 pt high in a panel about half the figure wide
            yscale = (90 / 72.0) / (MAX_WIDTH_IN * 0.47)
            panels.append((zx, r, _pick_points(P, inside, center, n_points, yscale=yscale)))

        handles, labels = [], []
        if legend:
            handles += [Line2D([], [], ls="", marker="o", ms=6, mfc=c, mec="none") for _, c in legend]
            labels += [str(lab) for lab, _ in legend]
        if n_reg:
            handles += [Line2D([], [], ls="", marker="s", ms=7, mfc=scol[s], mec="none") for s in sources]
            labels += [f"terms: {s}" for s in sources]
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), frameon=False,
                       fontsize=8.5)
        if panels:
            fig.draw_without_rendering()  # settle the layout: the bands below are sized in points
            for zx, r, picks in panels:
                _annotate(fig, zx, r, picks, P=P, cols=cols, size=size, emb=emb, exp=exp, sources=sources,
                          scol=scol, n_terms=n_terms)
    return fig


#: Font size (pt) and line step (pt) of the terms written in a zoom panel.
_FONT, _STEP = 7.5, 9.5


def _renderer(fig):
    """A renderer to measure text with (an Agg canvas is attached to a bare Figure)."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def _fit_block(fig, zx, texts) -> None:
    """Keep a block of text lines inside its panel: shorten lines wider than the panel, then
    shift the block sideways by what sticks out."""
    from matplotlib import transforms

    renderer = _renderer(fig)
    box = zx.get_window_extent(renderer)
    # text is measured at the figure's dpi; hinting makes it a few per cent wider at other dpis
    margin = 0.02 * box.width + 3.0
    avail = (box.width - 2 * margin) / 1.06
    for t, _ in texts:
        full = t.get_text()
        n = len(full)
        while n > 8 and t.get_window_extent(renderer).width > avail:
            n -= 2
            t.set_text(full[:n] + "…")
    exts = [t.get_window_extent(renderer) for t, _ in texts]
    left, right = min(e.x0 for e in exts), max(e.x1 for e in exts)
    shift_px = 0.0
    width = (right - left) * 1.06
    if texts[0][0].get_ha() == "right":
        left = right - width
    else:
        right = left + width
    if right > box.x1 - margin:
        shift_px = (box.x1 - margin) - right
    if left + shift_px < box.x0 + margin:
        shift_px = (box.x0 + margin) - left
    if shift_px:
        dx = shift_px * 72.0 / fig.dpi
        for t, dy in texts:
            t.set_transform(transforms.offset_copy(zx.transAxes, fig=fig, x=dx, y=dy, units="points"))


def _annotate(fig, zx, r, picks, *, P, cols, size, emb, exp, sources, scol, n_terms):
    """Number the picked tracks of one zoom panel and write their terms in bands above and below
    the points (odd picks above, even ones below), each block near its track's x position."""
    from matplotlib import transforms

    h_pt = zx.get_window_extent(_renderer(fig)).height * 72.0 / fig.dpi
    blocks = []
    for num, i in enumerate(picks, start=1):
        lab = emb["label"].iloc[i]
        lab = f"{lab:.3g}" if isinstance(lab, (float, np.floating)) else lab
        lines = [(f"{num}: {lab}" if pd.notna(lab) else f"{num}", "0.1")]
        for s in sources:
            j = int(np.argmax(exp.z[s][i]))
            lines.append((f"{s}: " + ", ".join(_short(t) for t in exp.terms(s, j, n_terms=n_terms)), scol[s]))
        blocks.append((num, i, lines, "top" if num % 2 else "bottom"))
    band = {"top": 0.0, "bottom": 0.0}
    for _, _, lines, where in blocks:
        band[where] += len(lines) * _STEP + 3
    top_f, bot_f = band["top"] / h_pt + 0.03, band["bottom"] / h_pt + 0.03
    if top_f + bot_f > 0.8:  # too many lines for the panel: squeeze the points, keep the text
        scale = 0.8 / (top_f + bot_f)
        top_f, bot_f = top_f * scale, bot_f * scale
    span = r.y1 - r.y0
    inner = 1.0 - top_f - bot_f
    zx.set_ylim(r.y0 - bot_f * span / inner, r.y1 + top_f * span / inner)
    used = {"top": 0.0, "bottom": 0.0}
    for num, i, lines, where in blocks:
        px, py = P[i]
        zx.scatter([px], [py], s=size * 4, facecolors=cols[i], edgecolors="k", linewidths=0.9, zorder=3)
        zx.annotate(str(num), (px, py), xytext=(4, 4), textcoords="offset points", fontsize=8.5,
                    fontweight="bold", zorder=4)
        fx = (px - r.x0) / max(r.x1 - r.x0, 1e-12)
        ax_x, ha = (max(0.01, fx - 0.04), "left") if fx < 0.5 else (min(0.99, fx + 0.04), "right")
        ax_y = 1.0 if where == "top" else 0.0
        y0 = -used[where] - 2 if where == "top" else used[where] + 2
        order = lines if where == "top" else lines[::-1]
        texts = []
        for k, (text, color) in enumerate(order):
            dy = y0 - k * _STEP if where == "top" else y0 + k * _STEP
            tr = transforms.offset_copy(zx.transAxes, fig=fig, x=0, y=dy, units="points")
            texts.append((zx.text(ax_x, ax_y, text, transform=tr, ha=ha, va="top" if where == "top" else "bottom",
                                  fontsize=_FONT, color=color, zorder=5, clip_on=False,
                                  fontweight="bold" if color == "0.1" else "normal", in_layout=False), dy))
        _fit_block(fig, zx, texts)
        used[where] += len(lines) * _STEP + 3
        # a faint leader from the band to the track
        edge = r.y1 if where == "top" else r.y0
        zx.plot([px, px], [edge, py], color="0.6", lw=0.6, ls=":", zorder=2)
