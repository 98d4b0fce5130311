"""mtdtl.evaluation.results: tidy rows, the append-only per-run results file, collect."""

from __future__ import annotations

import multiprocessing as mp

import pandas as pd
import pytest

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.protocol import PROTOCOL
from mtdtl.evaluation.results import (COLUMNS, ResultsTable, average_repetitions, collect, read_results,
                                      summarize, tidy_rows)
from mtdtl.runs import RunSpec


def _rows(run="ms_cr6-bpm+tag-seed0-e30", target="gtzan", values=(0.5, 0.6), **kw):
    spec = RunSpec.from_id(run)
    return tidy_rows([{"accuracy": v, "split": f"fold {j + 1}/5"} for j, v in enumerate(values)],
                     identity=spec.identity_columns(), representation=spec.id, target=target,
                     task="classification", **kw)


def test_tidy_rows_columns_identity_and_split():
    df = _rows()
    assert list(df.columns) == list(COLUMNS) and len(df) == 2
    r = df.iloc[0]
    assert (r["run"], r["kind"], r["arch"], r["sources"], r["n_sources"], r["seed"], r["epochs"]) == (
        "ms_cr6-bpm+tag-seed0-e30", "learned", "ms_cr@6", "bpm+tag", 2, 0, 30)
    assert list(df["split"]) == ["fold 1/5", "fold 2/5"] and set(df["protocol"]) == {PROTOCOL}
    base = tidy_rows([{"r2": 0.1}], representation="mfcc", kind="mfcc", target="emo_arousal", task="regression")
    assert base.iloc[0]["n_sources"] == 0 and pd.isna(base.iloc[0]["seed"]) and base.iloc[0]["run"] == "mfcc"
    with pytest.raises(MtdtlError, match="not a number"):
        tidy_rows([{"accuracy": "high"}], representation="r", target="t")
    with pytest.raises(MtdtlError, match="more than once"):
        tidy_rows([{"accuracy": 1.0}], representation="r", target="t", sources="bpm,bpm")
    with pytest.raises(MtdtlError, match="kind"):
        tidy_rows([{"accuracy": 1.0}], representation="r", target="t", kind="nope")


def test_average_and_summarize():
    assert average_repetitions([{"r2": 0.2, "split": "a"}, {"r2": 0.4, "split": "b"}]) == {"r2": pytest.approx(0.3)}
    s = summarize(pd.concat([_rows(), _rows(target="ballroom", values=(1.0,))]))
    row = s[s.target == "gtzan"].iloc[0]
    assert row["mean"] == pytest.approx(0.55) and row["n"] == 2 and row["run"] == "ms_cr6-bpm+tag-seed0-e30"


def test_append_read_dedup_no_overwrite(tmp_path, caplog):
    table = ResultsTable(tmp_path / "sub" / "results.csv")
    assert table.read().empty and list(table.read().columns) == list(COLUMNS)
    assert table.append(_rows()) == 2
    assert table.append(_rows(target="ballroom")) == 2
    assert table.append(_rows()) == 0  # the same rows again: nothing added
    with caplog.at_level("WARNING"):  # same keys with other values: not overwritten, warned
        assert table.append(_rows(values=(0.9, 0.9))) == 0
    assert "not overwritten" in caplog.text
    df = table.read()
    assert len(df) == 4 and sorted(df[df.target == "gtzan"]["value"]) == [0.5, 0.6]
    assert table.append(_rows(values=(0.1, 0.2, 0.3))) == 1  # a third repetition is a new key
    assert table.has(run="ms_cr6-bpm+tag-seed0-e30", target="gtzan", sources="tag,bpm")
    assert not table.has(representation="other")
    # another protocol is another row, never mixed silently
    assert table.append(_rows(protocol="paper-1+candidates=held_out")) == 2
    # a baseline's empty arch and sources survive the round trip
    table.append(tidy_rows([{"accuracy": 0.4}], representation="mfcc", kind="mfcc", target="gtzan"))
    base = table.read().query("kind == 'mfcc'").iloc[0]
    assert base["arch"] == "" and base["sources"] == "" and pd.isna(base["seed"])
    assert sorted(p.name for p in table.path.parent.iterdir()) == ["results.csv", "results.csv.lock"]


def test_appends_write_only_the_new_rows(tmp_path):
    table = ResultsTable(tmp_path / "results.csv")
    table.append(_rows())
    before = table.path.read_bytes()
    table.append(_rows(target="fma"))
    after = table.path.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 2


def test_rand_baselines_of_two_runs_do_not_collide(tmp_path):
    from mtdtl.runs import baseline_id

    table = ResultsTable(tmp_path / "results.csv")
    for arch in ("ss_r", "ms_cr@6"):
        rid = baseline_id("rand", arch=arch, sources="self" if arch == "ss_r" else "self+bpm")
        assert not table.has(run=rid, target="gtzan")
        table.append(tidy_rows([{"accuracy": 0.3}], representation=rid, run=rid, kind="rand", arch=arch,
                               target="gtzan"))
    assert table.read()["run"].nunique() == 2


def test_damaged_files_are_clear_errors_and_appends_do_not_make_them_worse(tmp_path, caplog):
    table = ResultsTable(tmp_path / "results.csv")
    table.append(_rows())
    text = table.path.read_text()
    table.path.write_text(text + text.splitlines()[-1][:25])  # a crash cut the last line
    with caplog.at_level("WARNING"):
        assert len(table.read()) == 2
        assert table.append(_rows(target="fma")) == 2
    assert "cut" in caplog.text
    df = table.read()  # the torn line is kept aside, the new rows are whole, on their own lines
    assert len(df) == 4 and (tmp_path / "results.csv.torn").read_text().startswith("ms_cr6")
    bad = tmp_path / "bad.csv"
    lines = table.path.read_text().splitlines()
    bad.write_text("\n".join(lines[:2] + [lines[2].replace(",0.6,", ",zero point six,")] + lines[3:]) + "\n")
    with pytest.raises(MtdtlError, match=r"bad.csv: bad value 'zero point six' on line 3|bad value .* line 3"):
        ResultsTable(bad).read()
    (tmp_path / "old.csv").write_text("representation,arch,sources,target,repetition,metric,value\nr,,,t,0,a,1\n")
    with pytest.raises(MtdtlError, match="not a results table of this mtdtl version"):
        ResultsTable(tmp_path / "old.csv").read()
    with pytest.raises(MtdtlError, match="lack the columns"):
        table.append(pd.DataFrame({"representation": ["r"], "value": [1.0]}))
    with pytest.raises(MtdtlError, match="repeat a key"):
        table.append(pd.concat([_rows(target="x"), _rows(target="x")]))
    with pytest.raises(MtdtlError, match="CSV"):
        ResultsTable(tmp_path / "r.parquet")


def _append_worker(args):
    path, i = args
    ResultsTable(path).append(_rows(run=f"ss_r-tag-seed{i}-e30", values=tuple(0.1 * k for k in range(5))))
    ResultsTable(path).append(_rows(run=f"ss_r-tag-seed{i}-e30", values=tuple(0.1 * k for k in range(5))))


def test_concurrent_writers_never_lose_or_duplicate_rows(tmp_path):
    path = tmp_path / "results.csv"
    with mp.get_context("spawn").Pool(3) as pool:
        pool.map(_append_worker, [(path, i) for i in range(12)])
    df = ResultsTable(path).read()
    assert len(df) == 60 and df["run"].nunique() == 12
    assert not df.duplicated(["run", "target", "repetition", "metric", "protocol"]).any()


def test_collect_concatenates_run_files(tmp_path):
    for run in ("ss_r-tag-seed0-e30", "ms_cr6-bpm+tag-seed0-e30"):
        ResultsTable(tmp_path / "runs" / run / "evaluate" / "results.csv").append(_rows(run=run))
    df = collect(tmp_path / "runs", out=tmp_path / "all.csv")
    assert len(df) == 4 and set(df["run"]) == {"ss_r-tag-seed0-e30", "ms_cr6-bpm+tag-seed0-e30"}
    assert len(read_results(tmp_path / "all.csv")) == 4 and len(read_results(tmp_path / "runs")) == 4
    # the same baseline evaluated in two run folders (identical rows) is kept once
    for run in ("a", "b"):
        ResultsTable(tmp_path / "runs2" / run / "results.csv").append(
            tidy_rows([{"accuracy": 0.3}], representation="mfcc", kind="mfcc", target="gtzan"))
    assert len(collect(tmp_path / "runs2")) == 1
    ResultsTable(tmp_path / "runs2" / "c" / "results.csv").append(
        tidy_rows([{"accuracy": 0.9}], representation="mfcc", kind="mfcc", target="gtzan"))
    with pytest.raises(MtdtlError, match="different values"):
        collect(tmp_path / "runs2")
