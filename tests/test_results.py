"""The tidy results table: rows from metric dicts, append, de-duplication, no overwrite."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.results import (COLUMNS, ResultsTable, average_repetitions, sources_key,
                                      summarize, tidy_rows)


def _rows(rep="run1", target="gtzan", values=(0.5, 0.6), **kw):
    return tidy_rows([{"accuracy": v} for v in values], representation=rep, arch="ms_cr@6",
                     sources=["tag", "bpm"], target=target, **kw)


def test_tidy_rows_columns_and_sources():
    df = tidy_rows([{"accuracy": 0.5, "f1": 0.4}, {"accuracy": 0.7, "f1": 0.6}],
                   representation="r", arch="ss_r", sources="tag,self", target="gtzan", seed=3)
    assert list(df.columns) == list(COLUMNS) + ["seed"]
    assert len(df) == 4 and set(df["repetition"]) == {0, 1}
    assert set(df["sources"]) == {"self+tag"} and set(df["seed"]) == {3}
    assert sources_key(["artist", "bpm", "bpm"]) == "bpm+artist"
    with pytest.raises(MtdtlError, match="unknown learning sources"):
        sources_key(["genre"])
    with pytest.raises(MtdtlError, match="not a number"):
        tidy_rows([{"accuracy": "high"}], representation="r", target="t")
    with pytest.raises(MtdtlError, match="clash"):
        tidy_rows([{"accuracy": 1.0}], representation="r", target="t", metric="x")


def test_average_and_summarize():
    assert average_repetitions([{"r2": 0.2}, {"r2": 0.4}]) == {"r2": pytest.approx(0.3)}
    s = summarize(pd.concat([_rows(), _rows(target="ballroom", values=(1.0,))]))
    row = s[s.target == "gtzan"].iloc[0]
    assert row["mean"] == pytest.approx(0.55) and row["n"] == 2


def test_append_read_dedup_no_overwrite(tmp_path, caplog):
    table = ResultsTable(tmp_path / "sub" / "results.csv")
    assert table.read().empty and list(table.read().columns) == list(COLUMNS)
    assert table.append(_rows()) == 2
    assert table.append(_rows(target="ballroom")) == 2
    # the same rows again: nothing added
    assert table.append(_rows()) == 0
    # same keys with other values: not overwritten, warned
    with caplog.at_level("WARNING"):
        assert table.append(_rows(values=(0.9, 0.9))) == 0
    assert "not overwritten" in caplog.text
    df = table.read()
    assert len(df) == 4
    assert sorted(df[df.target == "gtzan"]["value"]) == [0.5, 0.6]
    # a third repetition is a new key
    assert table.append(_rows(values=(0.1, 0.2, 0.3))) == 1
    assert table.has(representation="run1", target="gtzan", sources="bpm+tag")
    assert not table.has(representation="run2")
    # empty arch / sources (baselines) survive the round trip as empty strings
    table.append(tidy_rows([{"accuracy": 0.4}], representation="mfcc", target="gtzan"))
    df = table.read()
    base = df[df.representation == "mfcc"].iloc[0]
    assert base["arch"] == "" and base["sources"] == ""
    assert df["repetition"].dtype == np.int64
    # no temporary files left behind
    assert sorted(p.name for p in table.path.parent.iterdir()) == ["results.csv", "results.csv.lock"]


def test_extra_columns_union(tmp_path):
    table = ResultsTable(tmp_path / "results.csv")
    table.append(_rows(seed=0))
    table.append(_rows(target="fma", run_id="abc"))
    df = table.read()
    assert {"seed", "run_id"} <= set(df.columns) and len(df) == 4


def test_bad_rows(tmp_path):
    table = ResultsTable(tmp_path / "results.csv")
    with pytest.raises(MtdtlError, match="lack the columns"):
        table.append(pd.DataFrame({"representation": ["r"], "value": [1.0]}))
    dup = pd.concat([_rows(), _rows()])
    with pytest.raises(MtdtlError, match="repeat a key"):
        table.append(dup)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(MtdtlError, match="lacks the columns"):
        ResultsTable(tmp_path / "bad.csv").read()


def _append_worker(args):
    path, i = args
    ResultsTable(path).append(_rows(rep=f"run{i}"))


def test_concurrent_appends_keep_every_row(tmp_path):
    path = tmp_path / "results.csv"
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_append_worker, [(path, i) for i in range(6)])
    df = ResultsTable(path).read()
    assert len(df) == 12 and df["representation"].nunique() == 6
