"""Algorithm 1 training: losses, batch sampling, exact resume, outputs, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fixtures_train import K_SYN, MISSING, N_TRAIN, N_VALID, make_store
from mtdtl.checkpoint import load_checkpoint, save_checkpoint
from mtdtl.constants import CROP_FRAMES
from mtdtl.device import cpu_has_bf16, resolve_bf16, resolve_device
from mtdtl.errors import MtdtlError
from mtdtl.models import build_model
from mtdtl.training import TrainConfig, kl_loss, log_table, plot_curves, read_log, self_loss, train
from mtdtl.training.sampling import (
    SourceData, epoch_length, make_rng, plan_epoch, source_data, validation_batches,
)

SOURCES = "self,year,tag"


@pytest.fixture(scope="module")
def syn_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("train"))


def _cfg(store, out_dir, **kw):
    # channels_last defaults to off for the tiny width (NHWC kernels are slow for 4-16 channels)
    base = dict(arch="ms_cr@6", sources=SOURCES, store=store, out_dir=out_dir, epochs=2, batch_size=4,
                width="tiny", bf16=False)
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------

def test_kl_loss_matches_hand_computation():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    z = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.2, 0.6]])
    e = np.exp(logits.numpy().astype(np.float64))
    p = e / e.sum(1, keepdims=True)
    zz = z.numpy().astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(zz > 0, zz * (np.log(zz) - np.log(p)), 0.0)
    expected = terms.sum(1).mean()
    assert kl_loss(logits, z).item() == pytest.approx(expected, rel=1e-5)
    assert kl_loss(logits, z, reduction="sum").item() == pytest.approx(2 * expected, rel=1e-5)
    # zero exactly when the prediction is the target; bf16 logits are scored in float32
    assert kl_loss(torch.log(z[1:]), z[1:]).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_loss(logits.bfloat16(), z).dtype == torch.float32


def test_self_loss_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.3, 0.3]])
    same = torch.tensor([1, 1, 0])
    lp = logits.log_softmax(1).numpy()
    assert self_loss(logits, same).item() == pytest.approx(-np.mean(lp[[0, 1, 2], [1, 1, 0]]), rel=1e-5)


# ---------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------

def _sd(name, n, k=3, offset=100):
    rows = np.arange(offset, offset + n, dtype=np.int64)
    z = None if name == "self" else np.random.default_rng(n).dirichlet(np.ones(k), size=n).astype(np.float32)
    return SourceData(name, rows, z, max_start=np.arange(n, dtype=np.int64) * 7)


def test_plan_respects_labels_and_balances_self_pairs():
    train = {"self": _sd("self", 9, offset=0), "tag": _sd("tag", 40, offset=50), "bpm": _sd("bpm", 3, offset=200)}
    L = epoch_length(train, 8)
    assert L == math.ceil(len(set(range(0, 9)) | set(range(50, 90)) | set(range(200, 203))) / 8) * 3
    plan = plan_epoch(make_rng(0, 1), train, 8, 300)
    seen = {b.source for b in plan}
    assert seen == {"self", "tag", "bpm"}
    for b in plan:
        d = train[b.source]
        pos = np.searchsorted(d.rows, b.rows)
        assert np.array_equal(d.rows[pos], b.rows)  # only tracks that have the source
        assert ((b.starts >= 0) & (b.starts <= d.max_start[pos])).all()  # crops inside the clip
        if b.source == "self":
            n = len(b.rows) // 2
            left, right = b.rows[:n], b.rows[n:]
            assert n == 8 and b.target.sum() == n // 2  # b pairs, half of them same-track
            assert np.array_equal(left[b.target == 1], right[b.target == 1])
            assert (left[b.target == 0] != right[b.target == 0]).all()
        else:
            assert len(b.rows) == min(8, len(d)) and len(set(b.rows)) == len(b.rows)  # no repeats
            assert np.array_equal(b.target, d.z[pos])
    # every draw gets a new crop: the same track is cropped at different places over the epoch
    tag_starts = {}
    for b in plan:
        if b.source == "tag":
            for r, s in zip(b.rows, b.starts):
                tag_starts.setdefault(int(r), set()).add(int(s))
    assert max(len(v) for v in tag_starts.values()) > 1
    # the same generator state gives the same plan (what exact resume relies on)
    again = plan_epoch(make_rng(0, 1), train, 8, 300)
    assert all(np.array_equal(a.rows, b.rows) and np.array_equal(a.starts, b.starts) for a, b in zip(plan, again))


def test_source_data_and_fixed_validation_crops(syn_store):
    from mtdtl.sources import load_reduced
    from mtdtl.store import SpectrogramStore

    store = SpectrogramStore.open(syn_store)
    labels = load_reduced(syn_store, sources=["self", "year", "tag"])
    train = source_data(store, labels, "train", ["self", "year", "tag"])
    valid = source_data(store, labels, "valid", ["self", "year", "tag"])
    ids = np.asarray(store.track_ids)
    assert len(train["self"]) == N_TRAIN and len(valid["self"]) == N_VALID
    assert set(ids[train["year"].rows]) == {f"t{i:02d}" for i in range(N_TRAIN)} - {f"t{i:02d}" for i in MISSING["year"]}
    assert np.allclose(train["tag"].z, labels["tag"].rows(ids[train["tag"].rows])) and train["tag"].z.shape[1] == K_SYN
    assert (train["tag"].max_start == [store.n_frames(int(i)) - CROP_FRAMES for i in train["tag"].rows]).all()
    v1 = validation_batches(valid, 3, seed=4)
    v2 = validation_batches(valid, 3, seed=4)
    for s in v1:
        for a, b in zip(v1[s], v2[s]):
            assert np.array_equal(a.rows, b.rows) and np.array_equal(a.starts, b.starts)
    assert sum(len(b.rows) for b in v1["tag"]) == len(valid["tag"])
    assert sum(int(b.target.sum()) for b in v1["self"]) == N_VALID  # one same pair per track
    assert sum(len(b.target) for b in v1["self"]) == 2 * N_VALID  # and one different pair


# ---------------------------------------------------------------------------------------
# training runs
# ---------------------------------------------------------------------------------------

def _strip_times(records):
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in records]


def test_training_outputs_and_bit_identical_resume(syn_store, tmp_path):
    whole = train(_cfg(syn_store, tmp_path / "whole"), progress=False)
    for name in ("model.safetensors", "model.json", "train_state.safetensors", "log.jsonl", "metrics.json",
                 "curves.png"):
        assert (whole / name).is_file(), name
    records = read_log(whole)
    assert [r["epoch"] for r in records] == [1, 2]
    L = 9  # ceil(10 training tracks / 4) x 3 sources
    assert records[-1]["step"] == 2 * L and sum(records[0]["train_iters"].values()) == L
    assert set(records[0]["valid_loss"]) == {"self", "year", "tag"} and "self" in records[0]["valid_acc"]
    metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["finished"] and metrics["epochs"] == 2 and metrics["feature_order"] == ["self", "year", "tag"]
    # the checkpoint serves feature extraction: model, front end and scaler
    model, meta = load_checkpoint(whole, arch="ms_cr@6")
    assert meta["training"]["sources"] == ["self", "year", "tag"] and len(meta["scaler"]["mean"]) == 128
    assert model.features(torch.zeros(2, 2, 216, 128)).shape == (2, model.feature_dim)
    assert plot_curves(whole).axes
    table = log_table(whole)
    assert len(table) == 2 * 3 and set(table["source"]) == {"self", "year", "tag"}
    assert table["valid_acc"].notna().sum() == 2  # self only

    # interrupted inside epoch 1, then at the epoch boundary, then finished
    parts = tmp_path / "parts"
    for max_steps, (epoch, step) in ((5, (0, 5)), (L, (1, L)), (L + 3, (1, L + 3))):
        train(_cfg(syn_store, parts, max_steps=max_steps), progress=False)
        assert not (parts / "metrics.json").exists()
        assert [r["epoch"] for r in read_log(parts)] == list(range(1, epoch + 1))
        assert load_checkpoint(parts)[1]["step"] == step
    train(_cfg(syn_store, parts), progress=False)

    a, b = load_file(whole / "model.safetensors"), load_file(parts / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = load_file(whole / "train_state.safetensors"), load_file(parts / "train_state.safetensors")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # Adam moments, RNG states
    assert _strip_times(read_log(whole)) == _strip_times(read_log(parts))

    # a finished run is left alone; asking for more epochs continues it
    mtime = (parts / "model.safetensors").stat().st_mtime_ns
    assert train(_cfg(syn_store, parts), progress=False) == parts
    assert (parts / "model.safetensors").stat().st_mtime_ns == mtime
    train(_cfg(syn_store, parts, epochs=3), progress=False)
    assert [r["epoch"] for r in read_log(parts)] == [1, 2, 3]
    with pytest.raises(MtdtlError, match="already holds 3 epochs"):
        train(_cfg(syn_store, parts, epochs=2), progress=False)


@pytest.mark.parametrize("arch,sources,channels_last", [("ss_r", "tag", True), ("mss_cr", "self,year", True),
                                                        ("ms_sr@fc", "bpm,tag", False)])
def test_other_architectures_and_layouts_train(syn_store, tmp_path, arch, sources, channels_last):
    out = train(_cfg(syn_store, tmp_path, arch=arch, sources=sources, epochs=1, channels_last=channels_last),
                progress=False)
    model, meta = load_checkpoint(out)
    assert meta["arch"] == arch and read_log(out)[0]["epoch"] == 1
    assert np.isfinite(list(read_log(out)[0]["valid_loss"].values())).all()


def test_bad_input_fails_before_training(syn_store, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(MtdtlError, match="unknown architecture.*ss_r, mss_cr"):
        _cfg(syn_store, out, arch="ms_cr@5")
    with pytest.raises(MtdtlError, match="unknown learning source"):
        _cfg(syn_store, out, sources="tag,genre")
    with pytest.raises(MtdtlError, match="exactly one source"):
        _cfg(syn_store, out, arch="ss_r", sources="tag,year")
    with pytest.raises(MtdtlError, match="epochs"):
        _cfg(syn_store, out, epochs=0)
    with pytest.raises(MtdtlError, match="batch_size"):
        _cfg(syn_store, out, batch_size=1)
    with pytest.raises(MtdtlError, match="no labels for any track of the training split"):
        train(_cfg(syn_store, out, sources="tag,artist"), progress=False)
    with pytest.raises(MtdtlError, match="no reduced labels"):
        train(_cfg(syn_store, out, sources="tag,lyrics"), progress=False)
    with pytest.raises(MtdtlError, match="store"):
        train(_cfg(tmp_path / "nowhere", out), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MtdtlError, match="not a complete spectrogram store"):
        train(_cfg(tmp_path / "empty", out), progress=False)
    with pytest.raises(MtdtlError, match="store is not set"):
        train(_cfg(None, out), progress=False)
    assert not out.exists()

    # an out_dir holding a checkpoint of another architecture (with or without training state)
    foreign = tmp_path / "foreign"
    save_checkpoint(foreign, build_model("ss_r", ["tag"], width="tiny", n_out=K_SYN), {})
    with pytest.raises(MtdtlError, match="checkpoint of a ss_r network"):
        train(_cfg(syn_store, foreign), progress=False)
    other = tmp_path / "other"
    train(_cfg(syn_store, other, arch="ss_r", sources="tag", max_steps=1), progress=False)
    with pytest.raises(MtdtlError, match="checkpoint of a SS-R"):
        train(_cfg(syn_store, other), progress=False)
    with pytest.raises(MtdtlError, match="another run.*lr"):
        train(_cfg(syn_store, other, arch="ss_r", sources="tag", lr=1e-3), progress=False)
    assert read_log(other) == []


def test_device_resolution():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(MtdtlError):
        resolve_device("tpu")
    cpu = torch.device("cpu")
    assert resolve_bf16("auto", cpu) == cpu_has_bf16()
    assert resolve_bf16(False, cpu) is False and resolve_bf16("false", cpu) is False
    with pytest.raises(MtdtlError):
        resolve_bf16("sometimes", cpu)


@pytest.mark.slow
def test_train_on_the_tiny_demo_store(tiny_store, tmp_path):
    from mtdtl.sources import load_reduced

    sources = [s for s, lab in load_reduced(tiny_store).items() if len(lab)]
    out = train(TrainConfig(arch="ms_cr@6", sources=sources, store=tiny_store, out_dir=tmp_path / "run",
                            epochs=1, batch_size=8, width="tiny"), progress=False)
    records = read_log(out)
    assert len(records) == 1 and all(np.isfinite(v) for v in records[0]["train_loss"].values() if v is not None)
    model, meta = load_checkpoint(out)
    assert model.feature_dim == model.width.feature * len(sources)
