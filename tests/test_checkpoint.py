"""Checkpoints: round trip, safe loading (no pickle), wrong-architecture and inconsistent files."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
import torch

from mtdtl.audio import FrontEnd
from mtdtl.checkpoint import load_checkpoint, load_state, read_meta, save_checkpoint, save_state
from mtdtl.errors import MtdtlError
from mtdtl.models import build_model
from mtdtl.training.sampling import make_rng
from mtdtl.training.state import optimizer_from_state, optimizer_to_state, rng_from_state, rng_to_state


def _meta():
    return {"front_end": FrontEnd(), "scaler": {"mean": np.linspace(-40, -10, 128), "std": np.full(128, 12.0)},
            "training": {"epochs": 3}}


@pytest.fixture
def model():
    m = build_model("ms_cr@4", ["tag", "self"], width="tiny", n_out=6, seed=3)
    m.train()
    with torch.no_grad():  # move the BN statistics away from their defaults
        m.features(torch.randn(4, 2, 216, 128))
    return m.eval()


def test_round_trip(tmp_path, model):
    path = save_checkpoint(tmp_path / "run", model, _meta())
    assert path == tmp_path / "run" / "model.safetensors" and (tmp_path / "run" / "model.json").is_file()
    x = torch.randn(2, 2, 216, 128)
    for where in (tmp_path / "run", path, tmp_path / "run" / "model.json"):
        loaded, meta = load_checkpoint(where)
        assert not loaded.training
        sd, ld = model.state_dict(), loaded.state_dict()
        assert sd.keys() == ld.keys() and all(torch.equal(sd[k], ld[k]) for k in sd)
        with torch.no_grad():
            assert torch.equal(loaded.features(x), model.features(x))
    assert meta["arch"] == "ms_cr@4" and meta["sources"] == ["self", "tag"] and meta["width"] == "tiny"
    assert meta["feature_order"] == ["self", "tag"] and meta["feature_dim"] == loaded.feature_dim
    assert FrontEnd.from_dict(meta["front_end"]) == FrontEnd()
    assert np.allclose(meta["scaler"]["mean"], np.linspace(-40, -10, 128)) and len(meta["scaler"]["std"]) == 128
    assert meta["training"] == {"epochs": 3} and "torch" in meta["versions"]
    # a file path with its own stem
    p2 = save_checkpoint(tmp_path / "other" / "net.safetensors", model, _meta())
    assert (tmp_path / "other" / "net.json").is_file()
    assert load_checkpoint(p2)[1]["checkpoint_id"] != meta["checkpoint_id"]


def test_loading_never_unpickles(tmp_path, model, monkeypatch):
    save_checkpoint(tmp_path, model, _meta())
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 2, 216, 128), "tag").sum().backward()
    opt.step()
    t, info = optimizer_to_state(opt)
    save_state(tmp_path / "state.safetensors", t, info)

    def boom(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(torch, "load", boom)
    load_checkpoint(tmp_path)
    load_state(tmp_path / "state.safetensors")
    assert (tmp_path / "model.safetensors").read_bytes()[:1] != b"\x80"  # not a pickle stream


def test_wrong_architecture_and_broken_files(tmp_path, model):
    save_checkpoint(tmp_path, model, _meta())
    with pytest.raises(MtdtlError, match="MS-CR@4.*not SS-R"):
        load_checkpoint(tmp_path, arch="ss_r")
    with pytest.raises(MtdtlError, match="trained on sources"):
        load_checkpoint(tmp_path, sources="tag")
    load_checkpoint(tmp_path, arch="MS-CR@4", sources=["tag", "self"])
    meta_path = tmp_path / "model.json"
    good = meta_path.read_text()
    # metadata claiming another architecture than the weights
    meta = json.loads(good)
    meta["arch"] = "ms_cr@6"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MtdtlError, match="ms_cr@4 weights but its metadata says ms_cr@6"):
        load_checkpoint(tmp_path)
    # a pair from two different saves
    meta = json.loads(good)
    meta["checkpoint_id"] = "0" * 32
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MtdtlError, match="different saves"):
        load_checkpoint(tmp_path)
    # weights of another shape under a matching header
    other = build_model("ms_cr@4", ["tag", "self"], width="tiny", n_out=9)
    save_checkpoint(tmp_path / "o", other, _meta())
    meta = json.loads((tmp_path / "o" / "model.json").read_text())
    meta["n_out"] = 6
    (tmp_path / "o" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(MtdtlError, match="do not fit"):
        load_checkpoint(tmp_path / "o")
    # not a checkpoint at all (no checksum to compare with: an older checkpoint)
    meta = json.loads(good)
    del meta["weights_sha256"]
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(MtdtlError, match="cannot read"):
        load_checkpoint(tmp_path)
    with pytest.raises(MtdtlError, match="no checkpoint"):
        read_meta(tmp_path / "nowhere")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(MtdtlError, match="not a mtdtl checkpoint"):
        read_meta(tmp_path / "x.json")


def test_optimizer_and_rng_state_round_trip(tmp_path):
    torch.manual_seed(0)
    m = build_model("ms_sr@fc", ["tag", "year"], width="tiny", n_out=3, seed=0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-6)
    x = torch.randn(4, 2, 216, 128)

    def step():
        opt.zero_grad()
        m(x, "tag").logsumexp(1).mean().backward()
        opt.step()

    step()
    sampler = make_rng(5, 1)
    sampler.random(3)
    o_t, o_i = optimizer_to_state(opt)
    r_t, r_i = rng_to_state(sampler)
    weights = {f"model.{k}": v.clone() for k, v in m.state_dict().items()}
    save_state(tmp_path / "s.safetensors", {**weights, **o_t, **r_t}, {"optimizer": o_i, "rng": r_i})
    step()
    expected = {k: v.clone() for k, v in m.state_dict().items()}
    draws = (sampler.random(2), torch.rand(2), np.random.random(2))

    tensors, info = load_state(tmp_path / "s.safetensors")
    m2 = build_model("ms_sr@fc", ["tag", "year"], width="tiny", n_out=3, seed=99)
    m2.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt2 = torch.optim.Adam(m2.parameters(), lr=1e-3, weight_decay=1e-6)
    optimizer_from_state(opt2, tensors, info["optimizer"])
    sampler2 = make_rng(0, 0)
    rng_from_state(sampler2, tensors, info["rng"])
    opt2.zero_grad()
    m2(x, "tag").logsumexp(1).mean().backward()
    opt2.step()
    got = m2.state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert np.array_equal(sampler2.random(2), draws[0])
    assert torch.equal(torch.rand(2), draws[1]) and np.array_equal(np.random.random(2), draws[2])


def test_weights_checksum_provenance_and_old_checkpoints(tmp_path, model, caplog):
    import mtdtl
    from mtdtl.checkpoint import verify_checkpoint
    from mtdtl.io import _git_commit, file_sha256

    wpath = save_checkpoint(tmp_path, model, _meta())
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["weights_sha256"] == file_sha256(wpath)
    assert meta["versions"]["mtdtl"] == mtdtl.__version__
    if _git_commit():  # a git checkout (the commit itself may move if someone commits meanwhile)
        assert re.fullmatch(r"[0-9a-f]{40}", meta["versions"]["mtdtl_commit"])
    assert load_checkpoint(tmp_path)[1]["weights_sha256"] == meta["weights_sha256"]
    assert verify_checkpoint(tmp_path) is None
    good = wpath.read_bytes()
    # one flipped bit in a weight: it would load and give features off by far; it is refused
    raw = bytearray(good)
    raw[-7] ^= 0x40
    wpath.write_bytes(bytes(raw))
    with pytest.raises(MtdtlError, match=r"model.safetensors is damaged.*Copy it again"):
        load_checkpoint(tmp_path)
    assert "damaged" in verify_checkpoint(tmp_path)
    # a checkpoint from before the checksum (none recorded) loads, with a debug note
    wpath.write_bytes(good)
    del meta["weights_sha256"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with caplog.at_level("DEBUG", logger="mtdtl.checkpoint"):
        loaded, m = load_checkpoint(tmp_path)
    assert "no weights checksum" in caplog.text and m["weights_sha256"] == file_sha256(wpath)
    sd, ld = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(sd[k], ld[k]) for k in sd)
