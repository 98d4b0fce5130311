"""Shared fixtures: a seeded RNG, synthetic audio, and the tiny demo corpus built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` next to the repository (skip when absent)."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20190101)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """The tiny demo corpus, built once for the whole test session."""
    from mtdtl.corpora.demo import build_demo_corpus

    root = tmp_path_factory.mktemp("corpus") / "demo-tiny-seed0"
    return build_demo_corpus(root=root, size="tiny", seed=0, progress=False)


@pytest.fixture(scope="session")
def tiny_store(tiny_corpus, tmp_path_factory) -> Path:
    """Spectrogram store of the tiny corpus' learning part, scaler fit and every source reduced."""
    from mtdtl.preprocess import preprocess_corpus

    out = tmp_path_factory.mktemp("store") / "demo-tiny"
    return preprocess_corpus(tiny_corpus, out, k=8, seed=0, progress=False)


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir(tmp_path_factory):
    """Keep everything the tests write (feature caches, default stores) out of ~/.cache."""
    old = os.environ.get("MTDTL_DATA_DIR")
    os.environ["MTDTL_DATA_DIR"] = str(tmp_path_factory.mktemp("mtdtl_data"))
    yield
    if old is None:
        os.environ.pop("MTDTL_DATA_DIR", None)
    else:
        os.environ["MTDTL_DATA_DIR"] = old


def pytest_configure(config):
    # torch / BLAS threads per test process: the cores shared among pytest-xdist's workers
    # (scripts/test.sh runs one worker per core), so that parallel tests never oversubscribe
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    os.environ.setdefault("MTDTL_NUM_THREADS", str(max(1, min(2, (os.cpu_count() or 1) // workers))))


@pytest.fixture(autouse=True)
def _restore_mtdtl_logging():
    """A test that calls ``setup_logging`` (the CLI's ``-q``, a notebook helper) must not leave
    the ``mtdtl`` logger at WARNING for the tests after it (their ``caplog`` would see nothing)."""
    import logging

    logger = logging.getLogger("mtdtl")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate
