"""Transfer against training (mtdtl.scaling): kept checkpoints evaluated beside the baselines."""

from __future__ import annotations

import pytest

from mtdtl.errors import MtdtlError
from mtdtl.scaling import checkpoint_epochs, source_learning, transfer_scaling
from mtdtl.transfer import resolve_targets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kept_run(tiny_store, tmp_path_factory):
    from mtdtl.training import TrainConfig, train

    out = tmp_path_factory.mktemp("scaling") / "run"
    return train(TrainConfig(arch="ss_r", sources="tag", store=str(tiny_store), out_dir=str(out), epochs=3,
                             batch_size=8, width="tiny", seed=0, keep_checkpoints=True), progress=False)


def test_transfer_scaling_rows_plot_and_resume(kept_run, tiny_corpus, tmp_path):
    import json

    from mtdtl.plots import scaling

    assert sorted(checkpoint_epochs(kept_run)) == [1, 2, 3]
    targets = resolve_targets("demo:genre,demo:note_density", corpus=str(tiny_corpus))
    out = tmp_path / "scaling.csv"
    res = transfer_scaling(kept_run, targets, epochs=[1, 3], results=out, repetitions=1, baselines="mfcc",
                           progress=False)
    meta = json.loads((kept_run / "metrics.json").read_text())
    per_epoch = meta["iterations_per_epoch"] * 8
    learned = res[res["series"] == "learned"]
    assert sorted(learned["epoch"].unique()) == [1, 3]
    assert set(learned["samples"]) == {per_epoch, 3 * per_epoch}
    assert set(res["series"]) == {"learned", "mfcc"} and res.loc[res["series"] == "mfcc", "samples"].isna().all()
    assert set(res["target"]) == {"demo:genre", "demo:note_density"} and res["value"].notna().all()
    # different weights, different features: the two checkpoints are not the same representation
    assert learned.groupby("epoch")["value"].apply(tuple).nunique() == 2
    fig = scaling(res)
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    ax = next(a for a in fig.axes if a.get_visible())
    ticks = sorted(res.loc[res["series"] == "learned", "samples"].unique())
    assert list(ax.get_xticks()) == ticks  # one tick per checkpoint, no crowded log-axis minor labels
    from mtdtl.plots.transfer import _short_count

    assert [_short_count(v) for v in (512, 147_456, 1_500_000, 2_000_000)] == ["512", "147k", "1.5M", "2M"]
    # resumable: the same call evaluates nothing again
    before = out.stat().st_mtime_ns
    again = transfer_scaling(kept_run, targets, epochs=[1, 3], results=out, repetitions=1, baselines="mfcc",
                             progress=False)
    assert out.stat().st_mtime_ns == before and len(again) == len(res)
    with pytest.raises(MtdtlError, match="no kept checkpoint of epoch"):
        transfer_scaling(kept_run, targets, epochs=[7], results=out, progress=False)


def test_source_learning_against_label_information(kept_run, tiny_store):
    from mtdtl.sources import label_information

    s = source_learning(kept_run, tiny_store)
    assert list(s["source"]) == ["tag"]
    info = label_information(tiny_store).set_index("source").loc["tag", "information"]
    row = s.iloc[0]
    assert row["information"] == pytest.approx(info)
    assert row["valid_kl_best"] <= row["valid_kl_first"]
    assert row["learned"] == pytest.approx(1 - row["valid_kl_best"] / info)


def test_a_run_without_kept_checkpoints_is_a_clear_error(tiny_store, tmp_path):
    from mtdtl.training import TrainConfig, train

    run = train(TrainConfig(arch="ss_r", sources="tag", store=str(tiny_store), out_dir=str(tmp_path / "r"), epochs=1,
                            batch_size=8, width="tiny"), progress=False)
    with pytest.raises(MtdtlError, match="keep_checkpoints=True"):
        transfer_scaling(run, [], progress=False)
