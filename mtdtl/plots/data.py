"""Figures of the corpus and the spectrogram store (01_preprocess).

Each function takes data or a path and returns a bare matplotlib Figure in the house style
(:mod:`mtdtl.plots.base`); notebooks only call these, so every figure is reproducible from the
library alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtdtl.errors import MtdtlError
from mtdtl.plots.base import new_figure, style

__all__ = ["mel_examples", "scaler_stats", "gmm_fit", "coverage"]


def mel_examples(store, *, n: int = 4, seed: int = 0, seconds: float = 10.0, corpus=None):
    """Standardised dB mel spectrograms (left channel) of ``n`` random clips of a store.

    Parameters
    ----------
    store : mtdtl.store.SpectrogramStore or path
    n : int
        Clips to show.
    seconds : float
        Length shown from the start of each clip.
    corpus : mtdtl.corpora.Corpus or path, optional
        Titles then name the clip's collection, title, instrument and tempo.
    """
    from mtdtl.store import SpectrogramStore

    store = store if isinstance(store, SpectrogramStore) else SpectrogramStore.open(store)
    if len(store.track_ids) == 0:
        raise MtdtlError(f"store {store.root} is empty")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(store.track_ids), size=min(n, len(store.track_ids)), replace=False)
    man = store.manifest
    if corpus is not None:
        from mtdtl.corpora import Corpus

        cman = (corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)).manifest
        extra = [c for c in ("collection", "title", "instrument", "tempo") if c in cman.columns]
        man = man[["track_id"]].merge(cman[["track_id"] + extra].drop_duplicates("track_id"), on="track_id",
                                      how="left")
    fig = new_figure(9.6, 1.9 * len(idx) + 0.5)
    with style():
        axes = fig.subplots(len(idx), 1, squeeze=False, sharex=True)
        fps = store.front_end.frames_per_second
        _mel_panels(fig, axes, store, idx, man, fps, seconds)
    return fig


def _mel_panels(fig, axes, store, idx, man, fps, seconds) -> None:
    for ax, i in zip(axes[:, 0], idx):
        S = store.frames(int(i), scaled=True)[: int(seconds * fps), 0, :]  # (frames, mel)
        im = ax.imshow(S.T, origin="lower", aspect="auto", cmap="magma", vmin=-3, vmax=3,
                       extent=[0, S.shape[0] / fps, 0, S.shape[1]])
        row = man.iloc[int(i)]
        title = str(row["track_id"])
        for col in ("collection", "title", "instrument", "tempo"):
            if col in man.columns and pd.notna(row[col]):
                title += f" · {row[col]:.0f} bpm" if col == "tempo" else f" · {row[col]}"
        ax.set_title(title, loc="left")
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(im, ax=axes[:, 0].tolist(), label="standardised dB", shrink=0.8)


def scaler_stats(store):
    """Per-mel-band mean and standard deviation of the store's scaler (fit on the train split)."""
    from mtdtl.store import SpectrogramStore

    store = store if isinstance(store, SpectrogramStore) else SpectrogramStore.open(store)
    sc = store.scaler
    fig = new_figure(8, 3.2)
    with style():
        ax = fig.subplots()
        bands = np.arange(len(sc.mean))
        ax.plot(bands, sc.mean, label="mean (dB)")
        ax.fill_between(bands, sc.mean - sc.std, sc.mean + sc.std, alpha=0.3, label="± std")
        ax.set_xlabel("mel band")
        ax.set_ylabel("dB")
        ax.set_title(f"per-band scaler: {sc.n_clips} {sc.split} clips, {sc.n_frames:,} frames")
        ax.legend()
    return fig


def gmm_fit(store_dir, sources=("bpm", "year")):
    """Histograms of the scalar sources' training values with the fitted k-component GMM."""
    sources = list(sources)
    if not sources:
        raise MtdtlError("gmm_fit: no scalar source (bpm, year) to show")
    fig = new_figure(4.8 * len(sources), 3.4)
    with style():
        axes = fig.subplots(1, len(sources), squeeze=False)
        _gmm_panels(axes, store_dir, sources)
    return fig


def _gmm_panels(axes, store_dir, sources) -> None:
    from mtdtl.sources.reduce import gmm_density

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
        ax.set_ylabel("density")
        ax.legend()


def coverage(table: pd.DataFrame):
    """Bar chart of label coverage per learning source (``coverage_table`` output)."""
    fig = new_figure(7.5, 3.3)
    with style():
        ax = fig.subplots()
        ax.bar(table["source"], table["coverage"], color="C0")
        for x, (c, p) in enumerate(zip(table["coverage"], table["present"])):
            ax.text(x, c + 0.02, str(p), ha="center", fontsize="small")
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("fraction of learning clips")
        ax.set_title("learning-source coverage (bar labels: clips with labels)")
    return fig
