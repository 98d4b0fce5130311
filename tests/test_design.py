"""The experimental design: candidates, Algorithm 2 against a brute-force reference, the alias
matrix, the released format and the authors' design shipped with the package."""

from __future__ import annotations

import hashlib
import io
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from mtdtl.constants import SOURCE_NAMES
from mtdtl.design import (MULTI_SOURCE_ARCHS, Design, alias_matrix, candidate_runs, caps, generate_design,
                          max_aliasing, read_design, read_released, released_design, replay, unbalance_table,
                          with_fixed_phases, write_released)
from mtdtl.errors import MtdtlError

#: sha256 of the authors' ExperimentalDesign.csv (public code release of Kim et al., 2019)
RELEASED_SHA256 = "de17bbe67b9d3d8c2d761a473c14036a12a6682819c50edf98f24cdf67733d97"
FIVE = ("self", "bpm", "tag", "lyrics", "artist")


# -- a brute-force reference of steps 4-5, written independently of mtdtl.design -------------

def _levels(arch, present, sources):
    """(factor, level) pairs of one run."""
    return [("arch", arch), ("n", int(sum(present)))] + [(s, bool(p)) for s, p in zip(sources, present)]


def _naive_unbalance(counts: Counter, cand_levels, cap: Counter, factors) -> int:
    """Unbalance of the chosen runs (``counts`` per (factor, level)) plus one candidate."""
    worst = 0
    for f, levels in factors.items():
        live = []
        for lv in levels:
            c = counts[(f, lv)] + ((f, lv) in cand_levels)
            if c < cap[(f, lv)]:
                live.append(c)
        if live:
            worst = max(worst, max(live) - min(live))
    return worst


def _naive_aliasing(rows: list, sources, archs) -> float:
    """max |corr| over indicator pairs of different factors (arch levels, sources); NaN -> 0."""
    Z = np.array([[a == x for x in archs] + list(p) for a, p in rows], dtype=float)
    group = [0] * len(archs) + list(range(1, len(sources) + 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.corrcoef(Z, rowvar=False) if len(rows) > 1 else np.full((Z.shape[1],) * 2, np.nan)
    C = np.nan_to_num(np.atleast_2d(C), nan=0.0)
    return max((abs(C[i, j]) for i in range(len(group)) for j in range(len(group)) if group[i] != group[j]),
               default=0.0)


def _check_algorithm2(design: Design, *, steps: int, alias_steps: int | None = None):
    """At every step the chosen run has minimal unbalance among the remaining candidates, and
    (in the first ``alias_steps``, default all) minimal aliasing among those (brute force)."""
    alias_steps = steps if alias_steps is None else alias_steps
    sources, archs = design.sources, design.archs
    cand = candidate_runs(sources=sources, archs=archs)
    cand_rows = [(a, tuple(p)) for a, p in zip(cand["arch"], cand[list(sources)].to_numpy(bool))]
    cand_levels = [frozenset(_levels(a, p, sources)) for a, p in cand_rows]
    cap = Counter(lv for levels in cand_levels for lv in levels)
    factors = {"arch": list(archs), "n": sorted({int(sum(p)) for _, p in cand_rows}),
               **{s: [False, True] for s in sources}}
    p3 = design.phase3
    picked = [(a, tuple(p)) for a, p in zip(p3["arch"], p3[list(sources)].to_numpy(bool))]
    chosen: list = []
    counts: Counter = Counter()
    remaining = set(range(len(cand_rows)))
    position = {r: i for i, r in enumerate(cand_rows)}
    for t, run in enumerate(picked[:steps]):
        u = {i: _naive_unbalance(counts, cand_levels[i], cap, factors) for i in remaining}
        u_min = min(u.values())
        j = position[run]
        assert u[j] == u_min, f"step {t + 1}: unbalance {u[j]} > minimum {u_min}"
        assert design.trace is None or design.trace["min_unbalance"].iloc[t] == u_min
        if t < alias_steps:
            O = [i for i in remaining if u[i] == u_min]
            al = {i: _naive_aliasing(chosen + [cand_rows[i]], sources, archs) for i in O}
            assert al[j] <= min(al.values()) + 1e-9, f"step {t + 1}: aliasing {al[j]} > {min(al.values())}"
        chosen.append(run)
        remaining.discard(j)
        counts.update(cand_levels[j])


# -- candidates ---------------------------------------------------------------------------------

def test_arc_codes_match_the_model_registry():
    from mtdtl.models.registry import DESIGN_ARC_CODES

    assert MULTI_SOURCE_ARCHS == tuple(DESIGN_ARC_CODES[k] for k in range(1, 6))


def test_candidates_and_caps_match_the_paper():
    cand = candidate_runs()
    assert len(cand) == 1230 and not cand.duplicated().any()
    assert list(cand["n"].value_counts().sort_index()) == [5 * k for k in (28, 56, 70, 56, 28, 8)]
    c = caps().set_index(["factor", "level"])["cap"]
    assert all(c[("arch", a)] == 246 for a in MULTI_SOURCE_ARCHS)
    assert [c[("n", k)] for k in range(2, 8)] == [140, 280, 350, 280, 140, 40]
    assert all(c[(s, 1)] == 630 and c[(s, 0)] == 600 for s in SOURCE_NAMES)


def test_fixed_phases():
    d = generate_design(budget=0)
    assert len(d) == 48 + 25 and d.phase3.empty
    p1, p2 = d.runs[d.runs.phase == 1], d.runs[d.runs.phase == 2]
    assert set(p1.arch) == {"ss_r"} and set(p1.n) == {1}
    assert all(sorted(p1[p1[s]].seed) == list(range(6)) for s in SOURCE_NAMES)
    assert set(p2.n) == {8} and all(sorted(p2[p2.arch == a].seed) == list(range(5)) for a in MULTI_SOURCE_ARCHS)
    assert list(d.runs.order) == list(range(1, 74)) and list(p1.step) == list(range(1, 49))


# -- Algorithm 2 --------------------------------------------------------------------------------

def test_algorithm2_five_sources_every_step_brute_force():
    d = generate_design(sources=FIVE, budget=125, seed=3)  # every candidate: levels get exhausted
    assert len(candidate_runs(sources=FIVE)) == 125 and len(d.phase3) == 125
    assert not d.phase3.duplicated(subset=["arch", *FIVE]).any()
    _check_algorithm2(d, steps=125)
    assert (d.trace["unbalance"] == d.trace["min_unbalance"]).all()


def test_algorithm2_eight_sources_first_steps_brute_force():
    d = generate_design(budget=60, seed=1)
    _check_algorithm2(d, steps=60, alias_steps=12)
    assert d.trace["unbalance"].iloc[-1] == unbalance_table(d)["unbalance"].max()
    assert d.trace["aliasing"].iloc[-1] == pytest.approx(max_aliasing(d))


def test_determinism_by_seed():
    a, b = generate_design(budget=60, seed=7), generate_design(budget=60, seed=7)
    pd.testing.assert_frame_equal(a.runs, b.runs)
    pd.testing.assert_frame_equal(a.trace, b.trace)
    assert not a.runs.equals(generate_design(budget=60, seed=8).runs)


def test_continue_a_design():
    start = released_design(budget=100)
    d = generate_design(budget=120, seed=0, start=start)
    pd.testing.assert_frame_equal(d.head(100).runs, start.runs)
    assert (d.trace["unbalance"] == d.trace["min_unbalance"]).all()
    with pytest.raises(MtdtlError, match="budget"):
        generate_design(budget=50, start=start)


def test_budget_and_arguments_checked():
    with pytest.raises(MtdtlError, match="between 0 and 1230"):
        generate_design(budget=1231)
    with pytest.raises(MtdtlError, match="budget"):
        generate_design(budget=-1)
    with pytest.raises(MtdtlError, match="at least 3"):
        generate_design(sources=("self", "bpm"), budget=1)
    with pytest.raises(MtdtlError, match="multi-source"):
        generate_design(archs=("ss_r",), budget=1)
    with pytest.raises(MtdtlError, match="unknown architecture"):
        candidate_runs(archs=("ms_cr@3",))
    assert len(generate_design(sources=FIVE, budget=125, ss_repetitions=1, all_repetitions=1).phase3) == 125


def test_five_sources_end_to_end(tmp_path):
    d = generate_design(sources=FIVE, budget=20, seed=0, ss_repetitions=2, all_repetitions=1)
    assert len(d) == 10 + 5 + 20 and set(d.phase3.n) <= {2, 3, 4}
    ut = unbalance_table(d)
    assert list(ut.index) == ["arch", "n", *FIVE] and ut.loc["n", "levels"] == 3
    assert alias_matrix(d).shape == (5 + 5 + 3, 5 + 5 + 3)
    text = write_released(d)
    assert text.splitlines()[0] == '"s1","s2","s3","s4","s5","arc","n"'
    back = read_released(io.StringIO(text), sources=FIVE, ss_repetitions=2, all_repetitions=1)
    pd.testing.assert_frame_equal(back.runs, d.runs)
    specs = d.to_runspecs(epochs=3, width="tiny", store=tmp_path)
    assert len({s.id for s in specs}) == len(d) and specs[0].sources == ("self",)


# -- metrics ------------------------------------------------------------------------------------

def _design(rows: str, sources=("a", "b", "c", "d")) -> Design:
    return read_released(io.StringIO('"s1","s2","s3","s4","arc","n"\n' + rows), sources=sources,
                         fixed_phases=False)


def test_alias_matrix_of_a_hand_computed_design():
    # s4 = 1 - s1 (fully aliased), the architecture balanced against every source, n constant
    d = _design('1,1,0,0,1,2\n0,0,1,1,1,2\n1,0,1,0,2,2\n0,1,0,1,2,2\n')
    A = alias_matrix(d)
    assert A.loc[("a", "present"), ("d", "present")] == pytest.approx(-1)
    assert A.loc[("a", "present"), ("b", "present")] == pytest.approx(0)
    assert A.loc[("arch", "mss_cr"), ("c", "present")] == pytest.approx(0)
    assert A.loc[("arch", "mss_cr"), ("arch", "ms_cr@2")] == pytest.approx(-1)
    assert np.isnan(A.loc[("n", "2"), ("a", "present")])  # n is constant
    assert max_aliasing(d) == pytest.approx(1)

    # runs ab/arc1, abc/arc1, cd/arc2: corr(a, c) = -1/2, corr(arc1, a) = 1, corr(n=2, c) = -1/2
    d = _design('1,1,0,0,1,2\n1,1,1,0,1,3\n0,0,1,1,2,2\n')
    A = alias_matrix(d)
    assert A.loc[("a", "present"), ("c", "present")] == pytest.approx(-0.5)
    assert A.loc[("arch", "mss_cr"), ("a", "present")] == pytest.approx(1)
    assert A.loc[("n", "2"), ("c", "present")] == pytest.approx(-0.5)
    # Goos & Jones: (X1'X1)^-1 X1'X2 with X1 = [1, z_c], X2 = z_a, z standardised
    def z(v):
        return (v - v.mean()) / v.std()

    X1 = np.column_stack([np.ones(3), z(np.array([0.0, 1, 1]))])
    coef = np.linalg.solve(X1.T @ X1, X1.T @ z(np.array([1.0, 1, 0])))
    assert coef[1] == pytest.approx(A.loc[("c", "present"), ("a", "present")])


def test_unbalance_table_counts_exhausted_levels_out():
    # 3 sources: per architecture the pairs ab, ac, bc (cap 3); mss_cr has all three (exhausted)
    d = read_released(io.StringIO('"s1","s2","s3","arc","n"\n' + "1,1,0,1,2\n1,0,1,1,2\n0,1,1,1,2\n1,1,0,2,2\n"),
                      sources=("a", "b", "c"), fixed_phases=False)
    ut = unbalance_table(d)
    assert ut.loc["arch"].tolist() == [5, 1, 0, 1, 1]  # levels, exhausted, min, max, unbalance
    assert ut["unbalance"].tolist() == [1, 0, 2, 2, 0]  # arch, n, a (3 vs 1), b (3 vs 1), c (2 vs 2)
    full = generate_design(sources=("a", "b", "c"), budget=15, seed=0, ss_repetitions=0, all_repetitions=0)
    ut = unbalance_table(full)
    assert (ut["exhausted"] == ut["levels"]).all() and (ut["unbalance"] == 0).all()


def test_summary_counts():
    s = released_design().summary()
    assert s.loc[("all", "runs")].tolist() == [48, 25, 352, 425]
    assert s.loc[("arch", "ss_r"), "total"] == 48 and s.loc[("n", "8"), "phase 2"] == 25
    assert s.xs("arch")["total"].sum() == 425 and s.xs("n")["phase 3"].sum() == 352


# -- the released design and the files ----------------------------------------------------------

def test_released_design_shipped_and_byte_exact():
    full = released_design(budget=None, fixed_phases=False)
    assert len(full) == 600 and full.sources == SOURCE_NAMES
    text = write_released(full)
    assert hashlib.sha256(text.encode()).hexdigest() == RELEASED_SHA256
    back = read_released(io.StringIO(text), fixed_phases=False)
    pd.testing.assert_frame_equal(back.runs, full.runs)
    d = released_design()
    assert len(d) == 425 and len(d.phase3) == 352
    assert d.phase3.iloc[0][["arch", "n"]].tolist() == ["ms_cr@4", 4]


def test_released_file_round_trips(reference_dir, tmp_path):
    path = reference_dir / "ExperimentalDesign.csv"
    d = read_released(path, fixed_phases=False)
    pd.testing.assert_frame_equal(d.runs, released_design(budget=None, fixed_phases=False).runs)
    write_released(d, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == path.read_bytes()
    assert len(read_released(path, budget=352).phase3) == 352


def test_released_design_has_minimal_unbalance_at_every_step():
    tr = replay(released_design(budget=None, fixed_phases=False))
    assert len(tr) == 600 and (tr["unbalance"] == tr["min_unbalance"]).all()
    ut = unbalance_table(released_design())
    assert ut.loc["n", "unbalance"] == 29 and ut.loc["arch", "unbalance"] == 7


def test_compact_format_round_trips(tmp_path):
    for d in (released_design(), generate_design(sources=FIVE, budget=30, seed=2, ss_repetitions=1)):
        d.to_csv(tmp_path / "d.csv")
        back = read_design(tmp_path / "d.csv")
        pd.testing.assert_frame_equal(back.runs, d.runs)
        assert back.sources == d.sources and back.seed == d.seed
    assert with_fixed_phases(released_design(fixed_phases=False)).runs.equals(released_design().runs)


@pytest.mark.parametrize("rows, match", [
    ('"2","1","0","0","1",3\n', "0 or 1"),
    ('"1","1","0","0","9",2\n', "arc 9"),
    ('"1","1","0","0","1",3\n', "n = 3"),
    ('"1","0","0","0","1",1\n', "not a phase-3 candidate"),
    ('"1","1","0","0","1",2\n"1","1","0","0","1",2\n', "same run"),
])
def test_read_released_rejects_bad_rows(rows, match):
    with pytest.raises(MtdtlError, match=match):
        _design(rows)
    with pytest.raises(MtdtlError, match="columns"):
        read_released(io.StringIO('"s1","arc","n"\n"1","1",1\n'))


def test_to_runspecs():
    d = released_design()
    specs = d.to_runspecs(epochs=200, store="msd")
    assert len(specs) == 425 and len({s.id for s in specs}) == 425
    assert specs[0].id == "ss_r-self-seed0-e200" and specs[48].arch == "mss_cr" and specs[48].n_sources == 8
    p3 = d.to_runspecs(epochs=200, phases=[3])
    assert [s.arch for s in p3] == list(d.phase3.arch) and all(s.seed == 0 for s in p3)


def test_alias_heatmap_returns_a_figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from mtdtl.plots.design import alias_heatmap

    fig = alias_heatmap(released_design())
    assert isinstance(fig, Figure) and "352 runs" in fig.axes[0].get_title()
    fig2 = alias_heatmap(released_design(), phases=None, include_n=False, annot=False)
    assert "425 runs" in fig2.axes[0].get_title()


def test_read_design_rejects_bad_files(tmp_path):
    with pytest.raises(MtdtlError, match="not an mtdtl design"):
        read_design(io.StringIO('"s1","s2","s3","arc","n"\n'))
    head = "# mtdtl design; sources: a,b,c; archs: mss_cr; seed: 0\nphase,step,arch,seed,sources\n"
    with pytest.raises(MtdtlError, match="line 3"):
        read_design(io.StringIO(head + "3,1,mss_cr,0,a+z\n"))
    with pytest.raises(MtdtlError, match="line 3"):
        read_design(io.StringIO(head + "x,1,mss_cr,0,a+b\n"))
    assert len(read_design(io.StringIO(head + "3,1,mss_cr,0,a+b\n"))) == 1
    with pytest.raises(MtdtlError, match="cannot read"):
        read_design(tmp_path / "missing.csv")
