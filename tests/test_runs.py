"""mtdtl.runs: one run identity — source parsing, run ids, folders, result columns, baseline names."""

from __future__ import annotations

import json

import pytest

from mtdtl.errors import MtdtlError
from mtdtl.runs import RunSpec, baseline_id, parse_sources, sources_key


def test_one_source_parser_for_the_package():
    assert parse_sources("tag,bpm") == parse_sources("tag+bpm") == parse_sources(["bpm", "tag"]) == ("bpm", "tag")
    for bad, msg in (("bpm,bpm", "more than once"), ("bpm+genre", "unknown"), ("", "no learning sources")):
        with pytest.raises(MtdtlError, match=msg):
            parse_sources(bad)
    assert sources_key(None) == "" and sources_key([]) == "" and sources_key("artist,self") == "self+artist"
    # the models and the results table use the same parser
    from mtdtl.models import canonical_sources

    with pytest.raises(MtdtlError, match="more than once"):
        canonical_sources("self+self")


@pytest.mark.parametrize("spec", [
    RunSpec("ms_cr@6", "self,bpm", epochs=30),
    RunSpec("ss_r", "tag", seed=3, epochs=200),
    RunSpec("MS-SR@FC", "tag+bpm+artist", seed=1, epochs=2, width="tiny", batch_size=16, lr=1e-3, l2=0.0),
    RunSpec("mss_cr", "self+bpm+year+taste+tag+lyrics+cdr_tag+artist", lr=2.5e-5),
    RunSpec("ms_cr@2", "year+tag", kl_reduction="elementwise_mean"),
])
def test_run_id_round_trips_spec_id_folder_spec(spec, tmp_path):
    rid = spec.id
    assert "/" not in rid and " " not in rid and "@" not in rid and rid == str(spec)
    assert RunSpec.from_id(rid) == spec
    folder = spec.folder(tmp_path)
    assert folder == tmp_path / rid
    folder.mkdir()
    spec.replace(store=str(tmp_path / "store")).write(folder)
    assert RunSpec.from_folder(folder) == spec.replace(store=str(tmp_path / "store"))
    assert json.loads((folder / "run.json").read_text())["id"] == rid


def test_readable_ids_and_defaults():
    assert RunSpec("ms_cr@6", "bpm,self", epochs=30).id == "ms_cr6-self+bpm-seed0-e30"
    assert RunSpec("ss_r", "tag", epochs=2, width="tiny", batch_size=8).id == "ss_r-tag-seed0-e2-tiny-b8"
    with pytest.raises(MtdtlError, match="canonical"):
        RunSpec.from_id("ms_cr6-bpm+self-seed0-e30")
    with pytest.raises(MtdtlError, match="not a run id"):
        RunSpec.from_id("my-run")


def test_invalid_specs_are_clear_errors():
    for kw, msg in (({"arch": "ss_r", "sources": "self,bpm"}, "exactly one source"),
                    ({"arch": "nope"}, "unknown architecture"), ({"epochs": 1.7}, "whole number"),
                    ({"epochs": "two"}, "integer"), ({"lr": float("inf")}, "finite"), ({"epochs": 0}, "at least 1"),
                    ({"width": "huge"}, "unknown width"), ({"seed": -1}, ">= 0")):
        with pytest.raises(MtdtlError, match=msg):
            RunSpec(**kw)


def test_same_spec_same_folder_from_library_config_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MTDTL_DATA_DIR", str(tmp_path))
    from mtdtl.training import TrainConfig, default_out_dir

    spec = RunSpec("ms_cr@6", "self,bpm", epochs=30, store=str(tmp_path / "stores" / "demo-small-seed0"))
    cfg = TrainConfig(arch="ms_cr@6", sources="bpm+self", epochs=30, store=spec.store)
    assert cfg.spec == spec and default_out_dir(cfg) == spec.folder()
    assert spec.folder() == tmp_path / "runs" / "demo-small-seed0" / "ms_cr6-self+bpm-seed0-e30"
    assert TrainConfig.from_spec(spec, device="cpu").spec == spec


def test_identity_columns_and_baseline_names():
    cols = RunSpec("ms_cr@4", "year,bpm", seed=2, epochs=10).identity_columns()
    assert cols == {"run": "ms_cr4-bpm+year-seed2-e10", "representation": "ms_cr4-bpm+year-seed2-e10",
                    "kind": "learned", "arch": "ms_cr@4", "sources": "bpm+year", "n_sources": 2, "seed": 2,
                    "epochs": 10}
    assert baseline_id("rand", arch="ss_r") == "rand-ss_r-seed0"
    assert baseline_id("rand", arch="ms_cr@6", sources="bpm,self", seed=1) == "rand-ms_cr6-self+bpm-seed1"
    assert baseline_id("rand", arch="ss_r", width="tiny") == "rand-ss_r-seed0-tiny"
    assert baseline_id("mfcc") == "mfcc"


def test_width_names_match_the_networks():
    from mtdtl.constants import WIDTH_NAMES
    from mtdtl.models.nets import WIDTHS

    assert tuple(WIDTHS) == WIDTH_NAMES
