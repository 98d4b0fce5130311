"""Algorithm 1 training: losses, sampling, exact resume, outputs, bad input; crash recovery,
divergence, one trainer per folder, provenance."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fixtures_train import K_SYN, MISSING, N_TRAIN, N_VALID, make_store
from mtdtl.checkpoint import checkpoint_store, load_checkpoint, read_state_info, save_checkpoint
from mtdtl.constants import CROP_FRAMES
from mtdtl.device import cpu_has_bf16, resolve_bf16, resolve_device
from mtdtl.errors import MtdtlError
from mtdtl.models import build_model
from mtdtl.training import TrainConfig, kl_loss, log_table, plot_curves, read_log, self_loss, train
from mtdtl.training.config import portable_path, resolve_path
from mtdtl.training.lock import RunLock
from mtdtl.training.sampling import (
    SourceData, epoch_length, make_rng, plan_epoch, source_data, validation_batches,
)

SOURCES = "self,year,tag"
CHILD = Path(__file__).resolve().parent / "child_train.py"


@pytest.fixture(scope="module")
def syn_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("train"))


def _cfg(store, out_dir, **kw):
    # channels_last defaults to off for the tiny width (NHWC kernels are slow for 4-16 channels)
    base = dict(arch="ms_cr@6", sources=SOURCES, store=store, out_dir=out_dir, epochs=2, batch_size=4,
                width="tiny", precision="fp32")
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


@pytest.fixture(scope="module")
def reference_run(syn_store, tmp_path_factory):
    """An uninterrupted run of ``_cfg`` (2 epochs, checkpoint every epoch): what every
    interrupted, crashed or resumed run must reproduce bit for bit."""
    return train(_cfg(syn_store, tmp_path_factory.mktemp("reference") / "whole"), progress=False)


#: metrics.json entries that measure time (they differ between any two runs)
TIME_KEYS = ("train_time_s", "samples_per_s")


def _metrics(run, *, drop=()):
    m = json.loads((run / "metrics.json").read_text())
    for k in TIME_KEYS:
        m.pop(k)
    m.pop("versions")  # provenance: the git commit moves when someone commits during the test
    for k in ("out_dir", *drop):  # where the run lives is not what it computed
        m["config"].pop(k)
    return m


def _assert_same_run(a, b, *, drop=()):
    """Weights, training state (Adam moments, RNG states), log and metrics equal bit for bit."""
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = load_file(a / "train_state.safetensors"), load_file(b / "train_state.safetensors")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert _strip_times(read_log(a)) == _strip_times(read_log(b))
    assert _metrics(a, drop=drop) == _metrics(b, drop=drop)
    assert load_checkpoint(b)[1]["finished"]  # whole: ids and sha256 verify


def test_training_outputs_and_bit_identical_resume(syn_store, reference_run, tmp_path):
    whole = reference_run
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
    assert metrics["precision"] == "fp32" and metrics["kl_reduction"] == "batchmean"
    assert not (whole / ".lock").exists()  # released (and removed) at the end
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


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,message", [
    ({"epochs": 1.7}, r"epochs=1.7: must be a whole number"),
    ({"epochs": "two"}, r"epochs='two': must be a whole number"),  # papermill -p epochs two
    ({"epochs": 0}, r"epochs=0: must be at least 1"),
    ({"max_steps": -5}, r"max_steps=-5: must be at least 1 \(or None"),
    ({"max_steps": 2.5}, r"max_steps=2.5"),
    ({"lr": float("inf")}, r"lr=inf: must be a finite number > 0"),
    ({"lr": float("nan")}, r"lr=nan: must be a finite number > 0"),
    ({"lr": -1e-3}, r"lr=-0.001"),
    ({"lr": "fast"}, r"lr='fast': must be a number"),
    ({"l2": float("inf")}, r"l2=inf"),
    ({"seed": -1}, r"seed=-1"),
    ({"batch_size": "x"}, r"batch_size='x'"),
    ({"checkpoint_every": 0}, r"checkpoint_every=0"),
    ({"num_threads": 0}, r"num_threads=0"),
    ({"precision": "fp16"}, r"precision='fp16': use one of fp32, bf16, auto"),
    ({"precision": "bf16", "bf16": False}, r"disagree"),
    ({"kl_reduction": "sum"}, r"kl_reduction='sum': use one of batchmean, elementwise_mean"),
    ({"keep_checkpoints": "maybe"}, r"keep_checkpoints='maybe'"),
])
def test_config_rejects_bad_values_clearly(kw, message):
    with pytest.raises(MtdtlError, match=message):
        TrainConfig(arch="ss_r", sources="tag", width="tiny", **kw)


def test_config_values_and_identity():
    c = TrainConfig(arch="ss_r", sources="tag", epochs="3", max_steps=4.0, lr="1e-3", seed=np.int64(2))
    assert (c.epochs, c.max_steps, c.lr, c.seed) == (3, 4, 1e-3, 2) and type(c.seed) is int
    assert c.precision == "fp32" and c.kl_reduction == "batchmean"  # the paper's arithmetic by default
    assert TrainConfig(arch="ss_r", sources="tag", bf16=True).precision == "bf16"
    assert TrainConfig(arch="ss_r", sources="tag", bf16="false").precision == "fp32"
    # a config saved by an older mtdtl (bf16, no precision, no kl_reduction) still reads
    old = {k: v for k, v in c.to_dict().items() if k not in ("precision", "kl_reduction")}
    assert TrainConfig.from_dict({**old, "bf16": "auto"}).identity() == c.identity()
    assert "kl_reduction" in c.identity()
    assert TrainConfig(arch="ss_r", sources="tag", kl_reduction="elementwise_mean").identity() != c.identity()


def test_store_is_recorded_relative_to_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MTDTL_DATA_DIR", str(tmp_path / "data"))
    assert portable_path(tmp_path / "data" / "stores" / "s") == "<data dir>/stores/s"
    assert portable_path(tmp_path / "elsewhere") == str((tmp_path / "elsewhere").resolve())
    monkeypatch.setenv("MTDTL_DATA_DIR", str(tmp_path / "moved"))  # the data dir moved (another machine)
    assert resolve_path("<data dir>/stores/s") == tmp_path / "moved" / "stores" / "s"
    assert TrainConfig(arch="ss_r", sources="tag", store="<data dir>/stores/s").store == str(
        tmp_path / "moved" / "stores" / "s")


def test_kl_loss_elementwise_mean_is_the_released_codes():
    logits, z = torch.randn(5, 7), torch.softmax(torch.randn(5, 7), 1)
    assert kl_loss(logits, z, reduction="elementwise_mean").item() == pytest.approx(kl_loss(logits, z).item() / 7)
    pair_logits, same = torch.randn(6, 2), torch.tensor([0, 1, 1, 0, 1, 0])
    # the released code: element-wise mean of a 2-way KL to one-hot targets = cross-entropy / 2
    onehot = torch.nn.functional.one_hot(same, 2).float()
    expected = torch.nn.functional.kl_div(pair_logits.log_softmax(1), onehot, reduction="none").mean()
    assert self_loss(pair_logits, same, reduction="elementwise_mean").item() == pytest.approx(expected.item())
    elementwise = torch.nn.functional.kl_div(logits.log_softmax(1), z, reduction="none").mean()
    assert kl_loss(logits, z, reduction="elementwise_mean").item() == pytest.approx(elementwise.item())
    with pytest.raises(MtdtlError):
        kl_loss(logits, z, reduction="max")


def test_run_lock_in_one_process(tmp_path):
    a = RunLock(tmp_path).acquire()
    with pytest.raises(MtdtlError, match=rf"in use by another trainer \(pid {os.getpid()}"):
        RunLock(tmp_path).acquire()
    a.release()
    assert not (tmp_path / ".lock").exists()
    # a lock file left by a dead process (its flock went with it) is taken over
    (tmp_path / ".lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": "elsewhere"}))
    with RunLock(tmp_path) as b:
        assert b.held and json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


# ---------------------------------------------------------------------------------------
# crashes, divergence, concurrent trainers, provenance
# ---------------------------------------------------------------------------------------

def _child(args: dict, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHILD.parents[1]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(CHILD), json.dumps(args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


FINAL_SAVE = ["model.safetensors", "model.json", "train_state.safetensors", "curves.png", "metrics.json"]


@pytest.mark.slow
def test_a_crash_at_any_write_of_the_final_save_is_recovered_bit_identically(syn_store, reference_run, tmp_path):
    """Kill a trainer (os._exit: no cleanup, its lock left behind) at each atomic write of its final
    save, run train() again, and compare with the uninterrupted run bit for bit."""
    cases = [(1, k) for k in range(len(FINAL_SAVE))]  # a state of epoch 1 is on disk
    cases += [(2, 1), (2, 2)]  # checkpoint_every=2: the final save is the first one (no state yet)
    for every, k in cases:
        out = tmp_path / f"every{every}-crash{k}"
        cfg = _cfg(syn_store, out, checkpoint_every=every)
        child = _child({"mode": "crash", "crash_at": k, "config": cfg.to_dict()})
        stdout, stderr = child.communicate(timeout=600)
        assert child.returncode == 17, f"case {(every, k)}: the child did not crash where asked:\n{stderr[-3000:]}"
        crashed_in = stdout.split()[-1]
        # (curves.png is skipped when matplotlib fails: then the k-th write is the next one)
        assert crashed_in in (FINAL_SAVE[k], FINAL_SAVE[min(k + 1, len(FINAL_SAVE) - 1)]), (every, k, stdout)
        assert (out / ".lock").is_file()  # the dead trainer's lock file is still there
        assert list(out.glob(f".{crashed_in}.*.tmp*")), f"case {(every, k)}: no temporary of {crashed_in} left"
        assert not (out / "metrics.json").exists()
        assert train(cfg, progress=False) == out
        _assert_same_run(reference_run, out, drop=("checkpoint_every",))
        assert not list(out.glob(".*.tmp*")) and not (out / ".lock").exists()
        assert (out / "curves.png").is_file() == (reference_run / "curves.png").is_file()


def test_final_save_writes_state_after_checkpoint_and_metrics_last(syn_store, tmp_path, monkeypatch, caplog):
    """The order the crash test relies on (and the writes it counts), on a 1-epoch run."""
    import mtdtl.io as io
    from mtdtl.training import loop

    names, real = [], io.atomic_path

    def recording(path, **kw):
        names.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(io, "atomic_path", recording)
    monkeypatch.setattr(loop, "atomic_path", recording)
    out = train(_cfg(syn_store, tmp_path / "run", arch="ss_r", sources="tag", epochs=1, batch_size=8),
                progress=False)
    expected = FINAL_SAVE
    if "could not draw the learning curves" in caplog.text:  # a plot never breaks a run (and is not written)
        expected = [n for n in FINAL_SAVE if n != "curves.png"]
    assert names[-len(expected):] == expected, (names, caplog.text)
    assert json.loads((out / "metrics.json").read_text())["finished"]


def test_finished_state_without_outputs_is_completed_not_returned(syn_store, reference_run, tmp_path):
    """A run killed after its final state was written (no metrics.json) and one whose checkpoint
    was damaged afterwards: train() completes/repairs them from the state; a whole run is returned."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    (out / "metrics.json").unlink()
    (out / "curves.png").unlink()
    raw = bytearray((out / "model.safetensors").read_bytes())
    raw[-5] ^= 0x10  # a flipped bit in the weights
    (out / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(MtdtlError, match="damaged"):
        load_checkpoint(out)
    assert train(_cfg(syn_store, out), progress=False) == out
    _assert_same_run(reference_run, out)
    assert (out / "curves.png").is_file()
    mtime = (out / "metrics.json").stat().st_mtime_ns
    train(_cfg(syn_store / "gone", out), progress=False)  # finished and whole: not even the store is needed
    assert (out / "metrics.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(syn_store, reference_run, tmp_path,
                                                                    monkeypatch):
    from mtdtl.training import loop

    poison = {"on": False}
    real_kl, real_save = loop.kl_loss, loop._Run.save

    def kl(logits, z, **kw):
        loss = real_kl(logits, z, **kw)
        return loss * float("nan") if poison["on"] and kw.get("reduction") != "sum" else loss

    def save(self, **kw):
        real_save(self, **kw)
        poison["on"] = True  # from the first checkpoint on, the loss is NaN

    monkeypatch.setattr(loop, "kl_loss", kl)
    monkeypatch.setattr(loop._Run, "save", save)
    out = tmp_path / "run"
    with pytest.raises(MtdtlError, match=r"diverged \(epoch 2.*not finite.*last good checkpoint \(epoch 1, step 9\)"):
        train(_cfg(syn_store, out), progress=False)
    info = read_state_info(out / "train_state.safetensors")
    assert (info["epoch"], info["finished"]) == (1, False) and not (out / "metrics.json").exists()
    model, meta = load_checkpoint(out)
    assert meta["epoch"] == 1 and all(torch.isfinite(v).all() for v in model.state_dict().values()
                                      if v.is_floating_point())
    assert [r["epoch"] for r in read_log(out)] == [1]
    # inside an epoch (max_steps), before any checkpoint: the weights are checked before saving
    first = tmp_path / "first"
    poison["on"] = True
    with pytest.raises(MtdtlError, match="no checkpoint had been written yet"):
        train(_cfg(syn_store, first, max_steps=4), progress=False)
    assert not (first / "model.safetensors").exists() and not (first / "train_state.safetensors").exists()
    # the cause fixed, the run resumes from its last good checkpoint to the uninterrupted result
    monkeypatch.undo()
    train(_cfg(syn_store, out), progress=False)
    _assert_same_run(reference_run, out)


@pytest.mark.slow
def test_a_second_trainer_in_the_same_folder_is_refused(syn_store, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg(syn_store, out, max_steps=2)
    child = _child({"mode": "hold", "config": cfg.to_dict()}, stdin=subprocess.PIPE)
    try:
        line = child.stdout.readline()
        assert line.strip() == "HOLDING", child.stderr.read()[-3000:]
        with pytest.raises(MtdtlError, match=rf"{out} is in use by another trainer \(pid {child.pid} on "):
            train(cfg, progress=False)
        assert read_log(out) == [] and not (out / "train_state.safetensors").exists()
        child.kill()  # dies holding the folder: its lock file stays, its flock goes
        child.wait(timeout=60)
        assert str(child.pid) in (out / ".lock").read_text()
        train(cfg, progress=False)  # the stale lock is taken over
        assert read_state_info(out / "train_state.safetensors")["step"] == 2 and not (out / ".lock").exists()
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def test_checkpoint_provenance_and_kl_reduction(syn_store, tmp_path, monkeypatch):
    import mtdtl
    from mtdtl.io import _git_commit
    from mtdtl.runs import RunSpec
    from mtdtl.training import loop

    monkeypatch.setenv("MTDTL_DATA_DIR", str(syn_store.parent))  # the store lies inside the data dir
    used = []
    real_kl, real_self = loop.kl_loss, loop.self_loss
    monkeypatch.setattr(loop, "kl_loss", lambda *a, **kw: used.append(("kl", kw.get("reduction"))) or real_kl(*a, **kw))
    monkeypatch.setattr(loop, "self_loss",
                        lambda *a, **kw: used.append(("self", kw.get("reduction"))) or real_self(*a, **kw))
    out = train(_cfg(syn_store, tmp_path / "run", max_steps=6, kl_reduction="elementwise_mean"), progress=False)
    assert {r for kind, r in used} == {"elementwise_mean"} and {k for k, _ in used} == {"kl", "self"}
    _, meta = load_checkpoint(out)
    assert meta["store"] == "<data dir>/store" and meta["training"]["store"] == "<data dir>/store"
    assert checkpoint_store(meta) == syn_store
    assert RunSpec.from_folder(out).store == "<data dir>/store"
    assert meta["versions"]["mtdtl"] == mtdtl.__version__
    if _git_commit():  # a git checkout (the commit itself may move if someone commits meanwhile)
        assert re.fullmatch(r"[0-9a-f]{40}", meta["versions"]["mtdtl_commit"])
    assert meta["precision"] == "fp32" and meta["kl_reduction"] == "elementwise_mean"
    assert len(meta["weights_sha256"]) == 64
    # kl_reduction is part of the run's identity
    with pytest.raises(MtdtlError, match="another run.*kl_reduction"):
        train(_cfg(syn_store, out, max_steps=6), progress=False)
    # an out_dir that is a file: a clear error, the file untouched
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(MtdtlError, match="is a file"):
        train(_cfg(syn_store, a_file), progress=False)
    assert a_file.read_text() == "mine"
