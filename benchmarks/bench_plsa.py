"""Benchmark: pLSA by sparse EM against scikit-learn's KL-divergence NMF.

The issue's setting: k = 50 topics, 100 iterations, a random sparse 46,000 x 5,000 count
matrix at 0.2 % density (about 460,000 non-zeros, counts 1-9) — the paper's 46,490 tracks with a
5,000-term vocabulary. Both methods run the same number of iterations from a seeded random
start; each runs in a fresh process so that the peak memory figures are its own:

- ``seconds``: wall time of the fit (matrix generation excluded);
- ``peak_traced_MB``: tracemalloc peak of Python/numpy allocations during the fit, input
  matrix excluded (scipy's and scikit-learn's arrays are numpy arrays, so they are traced);
- ``maxrss_delta_MB``: growth of the process's peak resident set during the fit;
- ``kl_divergence``: D(X || W H) at the end (pLSA: ``sum x log x - sum_d n_d log n_d - L``),
  so both objectives can be compared.

For scale: the dense E-step posterior would be nnz x k x 4 bytes = 88 MB here (about 9.7 GB for
the whole Taste Profile, 48 M triplets); the sparse EM keeps O(nnz + (rows + cols) k).

Run: ``python benchmarks/bench_plsa.py [--iters 100] [--k 50] [--skip-sklearn]``.
PERF.md's reference on a 2-core machine: sparse EM 5.8 s, scikit-learn 11-13 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

N_DOCS, N_TERMS, DENSITY = 46_000, 5_000, 0.002


def make_matrix(seed: int = 0):
    import numpy as np
    import scipy.sparse as sp

    # Random (row, col) pairs rather than scipy.sparse.random, whose sampling peaks at several
    # GB and would hide the fit's own peak resident memory; ~0.1 % of pairs collide and are summed.
    rng = np.random.default_rng(seed)
    nnz = int(N_DOCS * N_TERMS * DENSITY)
    rows = rng.integers(0, N_DOCS, nnz)
    cols = rng.integers(0, N_TERMS, nnz)
    X = sp.csr_matrix((rng.integers(1, 10, nnz).astype(np.float32), (rows, cols)), shape=(N_DOCS, N_TERMS))
    X.sum_duplicates()
    return X


def kl_constant(X) -> float:
    import numpy as np

    x = X.data.astype(np.float64)
    n = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    n = n[n > 0]
    return float((x * np.log(x)).sum() - (n * np.log(n)).sum())


def run_one(method: str, k: int, iters: int) -> dict:
    import numpy as np
    from sklearn.decomposition import NMF

    from mtdtl.sources.plsa import PLSA

    X = make_matrix()  # imports and input outside the measured region
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    if method == "sparse_em":
        p = PLSA(k=k, max_iter=iters, tol=0, seed=0).fit(X)
        seconds = time.perf_counter() - t0
        kl = kl_constant(X) - p.log_likelihood_[-1]
    else:
        nmf = NMF(n_components=k, beta_loss="kullback-leibler", solver="mu", max_iter=iters, tol=0,
                  init="random", random_state=0)
        W = nmf.fit_transform(X)
        seconds = time.perf_counter() - t0
        kl = float(nmf.reconstruction_err_) ** 2 / 2  # scikit-learn reports sqrt(2 D)
        del W
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "method": method, "k": k, "iterations": iters, "nnz": int(X.nnz),
        "seconds": round(seconds, 2), "peak_traced_MB": round(peak / 2**20, 1),
        "maxrss_delta_MB": round((rss1 - rss0) / 1024, 1), "kl_divergence": round(kl, 1),
        "nnz_k_float32_MB": round(X.nnz * k * 4 / 2**20, 1),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"), "numpy": np.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--worker", choices=["sparse_em", "sklearn_kl_nmf"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run_one(args.worker, args.k, args.iters)))
        return
    methods = ["sparse_em"] + ([] if args.skip_sklearn else ["sklearn_kl_nmf"])
    print(f"pLSA benchmark: {N_DOCS} x {N_TERMS} at {DENSITY:.1%} density, k={args.k}, {args.iters} iterations, "
          f"{os.cpu_count()} CPUs")
    rows = []
    for m in methods:
        out = subprocess.run([sys.executable, __file__, "--worker", m, "--k", str(args.k), "--iters", str(args.iters)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  {m:15s} {r['seconds']:7.2f} s   peak traced {r['peak_traced_MB']:7.1f} MB   "
              f"maxrss +{r['maxrss_delta_MB']:7.1f} MB   KL {r['kl_divergence']:.6g}")
    if len(rows) == 2:
        print(f"  speed-up x{rows[1]['seconds'] / rows[0]['seconds']:.2f}; "
              f"memory x{rows[1]['peak_traced_MB'] / max(rows[0]['peak_traced_MB'], 1e-9):.2f}; "
              f"(nnz x k float32 would be {rows[0]['nnz_k_float32_MB']} MB)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
