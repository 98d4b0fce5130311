"""pLSA by sparse EM: objective, planted topics, memory bound, convergence, seeding, fold-in."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from mtdtl.errors import MtdtlError
from mtdtl.sources.plsa import PLSA, plsa_log_likelihood


def planted(rng, *, n_docs=300, n_terms=60, k=4, words=150, alpha=0.2):
    """Documents drawn from k topics with (mostly) disjoint term blocks."""
    phi = np.full((k, n_terms), 1e-3)
    block = n_terms // k
    for z in range(k):
        phi[z, z * block:(z + 1) * block] = rng.random(block) + 0.5
    phi /= phi.sum(axis=1, keepdims=True)
    theta = rng.dirichlet(np.full(k, alpha), size=n_docs)
    X = np.stack([rng.multinomial(words, p) for p in theta @ phi]).astype(np.float32)
    return sp.csr_matrix(X), theta, phi


def kl_divergence(X: sp.csr_matrix, WH: np.ndarray) -> float:
    """Generalised KL divergence D(X || WH) of a dense reconstruction."""
    Xd = X.toarray().astype(np.float64)
    nz = Xd > 0
    return float((Xd[nz] * np.log(Xd[nz] / WH[nz])).sum() - Xd.sum() + WH.sum())


def test_objective_matches_sklearn_kl_nmf(rng):
    from sklearn.decomposition import NMF

    X, _, _ = planted(rng, n_docs=120, n_terms=40, k=5)
    p = PLSA(k=5, max_iter=400, tol=1e-9, seed=0).fit(X)
    n_d = np.asarray(X.sum(axis=1))
    ours = kl_divergence(X, (n_d * p.theta_) @ p.phi_)
    # The pLSA log-likelihood and the KL divergence differ by a constant (module docstring).
    Xd = X.toarray().astype(np.float64)
    const = float((Xd[Xd > 0] * np.log(Xd[Xd > 0])).sum() - (n_d[n_d > 0] * np.log(n_d[n_d > 0])).sum())
    assert ours == pytest.approx(const - p.log_likelihood_[-1], rel=1e-4)

    nmf = NMF(n_components=5, beta_loss="kullback-leibler", solver="mu", max_iter=400, tol=1e-9,
              init="nndsvda", random_state=0)
    W = nmf.fit_transform(X)
    theirs = kl_divergence(X, W @ nmf.components_)
    assert ours <= theirs * 1.05
    assert ours >= theirs * 0.8


def test_log_likelihood_is_monotone(rng):
    X, _, _ = planted(rng)
    p = PLSA(k=6, max_iter=60, tol=0, seed=3).fit(X)
    ll = np.asarray(p.log_likelihood_)
    assert len(ll) == 61 and p.n_iter_ == 60
    assert np.all(np.diff(ll) >= -1e-6 * np.abs(ll[:-1]))
    assert ll[-1] > ll[0]
    assert ll[-1] == pytest.approx(plsa_log_likelihood(X, p.theta_, p.phi_), rel=1e-5)


def test_recovers_planted_topics(rng):
    X, theta, phi = planted(rng, n_docs=400, k=4)
    p = PLSA(k=4, max_iter=300, tol=1e-7, seed=0).fit(X)
    A = phi / np.linalg.norm(phi, axis=1, keepdims=True)
    B = p.phi_ / np.linalg.norm(p.phi_, axis=1, keepdims=True)
    cos = A @ B.T
    r, c = linear_sum_assignment(-cos)
    assert cos[r, c].min() > 0.95
    # Topic mixtures of the documents match too (after the same permutation).
    err = np.abs(p.theta_[:, c] - theta[:, r]).sum(axis=1).mean()
    assert err < 0.25


def test_rows_are_distributions_and_float32(rng):
    X, _, _ = planted(rng)
    p = PLSA(k=5, max_iter=20, seed=1).fit(X)
    assert p.theta_.dtype == np.float32 and p.phi_.dtype == np.float32
    np.testing.assert_allclose(p.theta_.sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(p.phi_.sum(axis=1), 1, atol=1e-4)
    assert p.p_z_.sum() == pytest.approx(1)


def test_seeding_is_deterministic(rng):
    X, _, _ = planted(rng)
    a = PLSA(k=5, max_iter=30, seed=7).fit(X)
    b = PLSA(k=5, max_iter=30, seed=7).fit(X)
    c = PLSA(k=5, max_iter=30, seed=8).fit(X)
    np.testing.assert_array_equal(a.theta_, b.theta_)
    np.testing.assert_array_equal(a.phi_, b.phi_)
    assert not np.array_equal(a.phi_, c.phi_)


def test_convergence_stops_early(rng):
    X, _, _ = planted(rng)
    p = PLSA(k=4, max_iter=2000, tol=1e-4, seed=0).fit(X)
    assert p.converged_ and p.n_iter_ < 2000
    gain = (p.log_likelihood_[-1] - p.log_likelihood_[-2]) / abs(p.log_likelihood_[-2])
    assert gain < 1e-4
    q = PLSA(k=4, max_iter=5, tol=1e-12, seed=0).fit(X)
    assert not q.converged_ and q.n_iter_ == 5


def test_fold_in(rng):
    X, theta, phi = planted(rng, n_docs=500, k=4)
    p = PLSA(k=4, max_iter=300, tol=1e-7, seed=0).fit(X[:400])
    # Training rows folded in again land near their fitted mixtures.
    again = p.fold_in(X[:50])
    assert np.abs(again - p.theta_[:50]).sum(axis=1).mean() < 0.05
    # Unseen rows: the fold-in recovers their planted mixtures.
    new = p.fold_in(X[400:])
    np.testing.assert_allclose(new.sum(axis=1), 1, atol=1e-4)
    A = phi / np.linalg.norm(phi, axis=1, keepdims=True)
    B = p.phi_ / np.linalg.norm(p.phi_, axis=1, keepdims=True)
    r, c = linear_sum_assignment(-(A @ B.T))
    assert np.abs(new[:, c] - theta[400:, r]).sum(axis=1).mean() < 0.3
    # Empty rows get the uniform distribution; wrong vocabulary size is an error.
    empty = p.fold_in(sp.csr_matrix((2, X.shape[1]), dtype=np.float32))
    np.testing.assert_allclose(empty, 0.25)
    with pytest.raises(MtdtlError, match="term columns"):
        p.fold_in(X[:, :10])


def test_memory_is_not_nnz_times_k(rng):
    n, m, k = 3000, 2000, 64
    X = sp.random(n, m, density=0.05, format="csr", random_state=1, dtype=np.float32)
    X.data = rng.integers(1, 5, X.nnz).astype(np.float32)
    nnz_k_bytes = X.nnz * k * 4  # 76.8 MB: what the dense E-step posterior would take
    tracemalloc.start()
    try:
        PLSA(k=k, max_iter=3, tol=0, seed=0).fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < nnz_k_bytes / 4, f"peak {peak / 1e6:.1f} MB vs nnz*k {nnz_k_bytes / 1e6:.1f} MB"


def test_topic_terms(rng):
    X, _, _ = planted(rng, n_terms=40, k=4)
    vocab = [f"w{i:02d}" for i in range(40)]
    p = PLSA(k=4, max_iter=100, seed=0).fit(X)
    wide = p.topic_terms(vocab, n=5, prefix="tag")
    assert list(wide.columns) == ["topic", "weight", "terms"]
    assert list(wide["topic"]) == ["tag1", "tag2", "tag3", "tag4"]
    for z, terms in enumerate(wide["terms"]):
        top = terms.split(", ")
        assert len(top) == 5
        assert top[0] == vocab[int(np.argmax(p.phi_[z]))]
        # planted blocks of 10 terms: the top terms of a topic come from one block
        assert len({int(t[1:]) // 10 for t in top}) == 1
    long = p.topic_terms(vocab, n=3, long=True)
    assert len(long) == 12 and list(long.columns) == ["topic", "rank", "term", "p"]


def test_bad_input():
    with pytest.raises(MtdtlError, match="k >= 1"):
        PLSA(k=0)
    with pytest.raises(MtdtlError, match="negative"):
        PLSA(k=2).fit(np.array([[1.0, -1.0], [2.0, 0.0]]))
    with pytest.raises(MtdtlError, match="NaN"):
        PLSA(k=2).fit(np.array([[1.0, np.nan], [2.0, 0.0]]))
    with pytest.raises(MtdtlError, match="no non-zero"):
        PLSA(k=2).fit(np.zeros((3, 3)))
    with pytest.raises(MtdtlError, match="not fitted"):
        PLSA(k=2).fold_in(np.ones((1, 3)))


def test_empty_training_rows_are_flagged():
    X = np.array([[3, 0, 1], [0, 0, 0], [0, 2, 2]], dtype=np.float32)
    p = PLSA(k=2, max_iter=20, seed=0).fit(X)
    assert p.empty_.tolist() == [False, True, False]
    np.testing.assert_allclose(p.theta_[1], 0.5)
