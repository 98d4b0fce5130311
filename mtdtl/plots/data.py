"""Figures for the notebooks: each function takes data or a path and returns a matplotlib Figure.

Notebooks only call these, so every figure is reproducible from the library alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError

__all__ = ["mel_examples", "scaler_stats", "gmm_fit", "coverage", "results_vs_baselines"]


def _plt():
    # imported late: matplotlib picks the inline backend in notebooks and Agg without a display
    import matplotlib.pyplot as plt

    return plt


def mel_examples(store, *, n: int = 4, seed: int = 0, seconds: float = 10.0):
    """Standardised dB mel spectrograms (left channel) of ``n`` random clips of a store.

    Parameters
    ----------
    store : mtdtl.store.SpectrogramStore or path
    n : int
        Clips to show.
    seconds : float
        Length shown from the start of each clip.
    """
    from mtdtl.store import SpectrogramStore

    store = store if isinstance(store, SpectrogramStore) else SpectrogramStore.open(store)
    if len(store.track_ids) == 0:
        raise MtdtlError(f"store {store.root} is empty")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(store.track_ids), size=min(n, len(store.track_ids)), replace=False)
    man = store.manifest
    plt = _plt()
    fig, axes = plt.subplots(len(idx), 1, figsize=(10, 2.2 * len(idx)), squeeze=False)
    fps = store.front_end.frames_per_second
    for ax, i in zip(axes[:, 0], idx):
        S = store.frames(int(i), scaled=True)[: int(seconds * fps), 0, :]  # (frames, mel)
        im = ax.imshow(S.T, origin="lower", aspect="auto", cmap="magma", vmin=-3, vmax=3,
                       extent=[0, S.shape[0] / fps, 0, S.shape[1]])
        row = man.iloc[int(i)]
        title = str(row["track_id"])
        for col in ("collection", "instrument"):
            if col in man.columns:
                title += f" · {row[col]}"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(im, ax=axes[:, 0].tolist(), label="standardised dB", shrink=0.8)
    return fig


def scaler_stats(store):
    """Per-mel-band mean and standard deviation of the store's scaler (fit on the train split)."""
    from mtdtl.store import SpectrogramStore

    store = store if isinstance(store, SpectrogramStore) else SpectrogramStore.open(store)
    sc = store.scaler
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    bands = np.arange(len(sc.mean))
    ax.plot(bands, sc.mean, label="mean (dB)")
    ax.fill_between(bands, sc.mean - sc.std, sc.mean + sc.std, alpha=0.3, label="± std")
    ax.set_xlabel("mel band")
    ax.set_ylabel("dB")
    ax.set_title(f"per-band scaler: {sc.n_clips} {sc.split} clips, {sc.n_frames} frames")
    ax.legend()
    fig.tight_layout()
    return fig


def gmm_fit(store_dir, sources=("bpm", "year")):
    """Histograms of the scalar sources' training values with the fitted 50-component GMM."""
    from mtdtl.sources.reduce import gmm_density

    plt = _plt()
    fig, axes = plt.subplots(1, len(sources), figsize=(5.5 * len(sources), 3.2), squeeze=False)
    for ax, name in zip(axes[0], sources):
        d = gmm_density(store_dir, name)
        e = d["hist_edges"]
        if len(e) >= 2:
            ax.bar(e[:-1], d["hist_density"], width=np.diff(e), align="edge", alpha=0.35, label="train values")
        for c in d["components"]:
            ax.plot(d["x"], c, lw=0.6, color="grey", alpha=0.6)
        ax.plot(d["x"], d["pdf"], color="C3", lw=2, label=f"GMM ({len(d['table'])} components)")
        ax.set_title(name)
        ax.set_xlabel(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def coverage(table: pd.DataFrame):
    """Bar chart of label coverage per learning source (``coverage_table`` output)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(table["source"], table["coverage"], color="C0")
    for x, (c, p) in enumerate(zip(table["coverage"], table["present"])):
        ax.text(x, c + 0.01, str(p), ha="center", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction of learning clips")
    ax.set_title("learning-source coverage")
    fig.tight_layout()
    return fig


def results_vs_baselines(results: pd.DataFrame, *, ours: str | None = None):
    """Figure-8-style plot: score per target of each representation, baselines included.

    Parameters
    ----------
    results : DataFrame
        The tidy results table (``representation, target, metric, value, ...``).
    ours : str, optional
        Representation to highlight.
    """
    if results.empty:
        raise MtdtlError("no results to plot")
    plt = _plt()
    g = results.groupby(["target", "metric", "representation"])["value"].agg(["mean", "std"]).reset_index()
    targets = list(dict.fromkeys(g["target"]))
    reps = list(dict.fromkeys(results["representation"]))
    baselines = ("mfcc", "rand", "choi")
    grey = iter(["0.35", "0.6", "0.8"])
    blue = iter(plt.get_cmap("tab10").colors)
    colors = {}
    for r in reps:
        colors[r] = "C3" if r == ours else next(grey, "0.5") if str(r).startswith(baselines) else next(blue)
    fig, axes = plt.subplots(1, len(targets), figsize=(2.3 * len(targets) + 1, 3.2), squeeze=False)
    for ax, t in zip(axes[0], targets):
        sub = g[g["target"] == t].set_index("representation").reindex(reps)
        ax.bar(range(len(reps)), sub["mean"], yerr=sub["std"].fillna(0), capsize=2,
               color=[colors[r] for r in reps])
        ax.set_xticks([])
        metric = sub["metric"].dropna().iloc[0] if sub["metric"].notna().any() else ""
        ax.set_title(f"{t}\n{metric}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[r]) for r in reps]
    fig.legend(handles, reps, loc="lower center", ncol=min(len(reps), 3), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(reps) - 1) // 3), 1, 1))
    return fig
