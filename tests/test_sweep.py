"""The sweep: sweep files, run states, the plan, and papermill runs on Dask end to end (slow)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtdtl.errors import MtdtlError
from mtdtl.evaluation.results import ResultsTable, tidy_rows
from mtdtl.runs import RunSpec
from mtdtl.sweep import (
    STATUS_NAME,
    _check_notebook_parameters,
    _driver_lock,
    _notebook_params,
    add_cli,
    collect_sweep,
    load_sweep,
    local_cluster_size,
    missing_rows,
    run_sweep,
    sweep_plan,
    sweep_status,
    write_sweep,
)

REPO = Path(__file__).resolve().parents[1]
TASKS = {"genre": {"type": "classification"}, "note_density": {"type": "regression"},
         "listening": {"type": "recommendation"}}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _fake_corpus(root: Path) -> Path:
    """Just enough of a demo corpus for the sweep's bookkeeping: targets/tasks.json."""
    (root / "targets").mkdir(parents=True)
    (root / "targets" / "tasks.json").write_text(json.dumps(TASKS))
    return root


def _small_sweep(tmp_path: Path, corpus: Path, store: Path, **extra) -> Path:
    body = f"""
name = "t"
[data]
corpus = "{corpus}"
store = "{store}"
[design]
sources = ["self", "bpm", "tag"]
budget = 1
ss_repetitions = 1
all_repetitions = 1
[train]
epochs = 1
width = "tiny"
batch_size = 8
[evaluate]
targets = ["demo"]
repetitions = 2
baselines = ["mfcc"]
"""
    for k, v in extra.items():
        body += f"{k}\n{v}\n"
    return _write(tmp_path / "t.toml", body)


# ---------------------------------------------------------------------------------------------
# the sweep file


def test_repository_sweep_files_are_valid():
    debug = load_sweep(REPO / "papermill_runs" / "debug.toml")
    assert debug.out == (REPO / "papermill_runs" / "debug").resolve()
    runs = debug.run_table()
    assert 4 <= len(runs) <= 16 and runs["run"].is_unique
    assert runs["arch"].nunique() >= 3 and runs["n_sources"].nunique() >= 2  # several architectures, source counts
    assert runs.groupby(["arch", "sources"]).size().max() >= 2  # repetitions
    paper = load_sweep(REPO / "papermill_runs" / "paper.toml")
    runs = paper.run_table()
    assert len(runs) == 425 and list(runs["phase"].value_counts().sort_index()) == [48, 25, 352]
    assert (runs["epochs"] == 200).all() and runs["run"].is_unique
    assert paper["train"]["batch_size"] == 128 and paper["train"]["width"] == "full"
    assert paper["evaluate"]["repetitions"] == 5


def test_shipped_sweep_files_match_the_repository(tmp_path, monkeypatch):
    """mtdtl/data/sweeps holds copies of papermill_runs/*.toml (for non-editable installs); a
    shipped file, found by name when papermill_runs/ is not there, writes under ./papermill_runs."""
    from mtdtl.sweep import PACKAGED_SWEEPS

    shipped = sorted(p.name for p in PACKAGED_SWEEPS.glob("*.toml"))
    assert shipped == sorted(p.name for p in (REPO / "papermill_runs").glob("*.toml")) == ["debug.toml", "paper.toml"]
    for name in shipped:
        assert (PACKAGED_SWEEPS / name).read_bytes() == (REPO / "papermill_runs" / name).read_bytes(), \
            f"cp papermill_runs/{name} mtdtl/data/sweeps/"
    monkeypatch.setenv("MTDTL_SWEEPS", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    debug = load_sweep("debug")
    assert debug.file.parent == PACKAGED_SWEEPS and debug.out == tmp_path / "papermill_runs" / "debug"


_DESIGN = "[design]\nsources = [\"self\", \"bpm\", \"tag\"]\nbudget = 1\n"


@pytest.mark.parametrize("snippet, words", [
    ("[train]\nepochs = \"ten\"", ["[train] epochs", "integer"]),
    ("[train]\nepochs = 0", ["[train] epochs", ">= 1"]),
    ("[train]\nwidht = \"tiny\"", ["unknown key", "widht", "[train]"]),
    ("[trian]\nepochs = 1", ["unknown section", "[trian]"]),
    ("[train]\nwidth = \"huge\"", ["[train] width", "full"]),
    ("[design]\nsources = [\"self\", \"bmp\", \"tag\"]", ["[design] sources", "bmp"]),
    ("[design]\nsources = [\"self\", \"tag\"]", ["[design] sources", "at least 3"]),
    ("[design]\nsources = [\"self\", \"bpm\", \"tag\"]\nbudget = 99", ["[design] budget", "candidates"]),
    ("[design]\nkind = \"file\"", ["[design] file", "kind"]),
    ("[evaluate]\ntargets = [\"gtzn\"]", ["[evaluate] targets", "gtzn"]),
    ("[evaluate]\nbaselines = [\"rand_arch\"]", ["[evaluate] baselines", "rand_arch"]),
    ("[evaluate]\nbaselines = [\"chance\"]", ["[evaluate] baselines", "chance is 03_evaluate's reference level"]),
    ("[evaluate]\ntarget_roots = {gtzan = \"/x\"}", ["[evaluate] target_roots", "gtzan"]),
    ("[train]\nparams = {epochs = 3}", ["[train] params", "epochs"]),
    ("[dask]\nworkers = -1", ["[dask] workers", ">= 0"]),
])
def test_bad_sweep_files_name_file_and_key(tmp_path, snippet, words):
    text = "[data]\ndemo_size = \"tiny\"\n" + ("" if snippet.startswith("[design]") else _DESIGN) + snippet + "\n"
    f = _write(tmp_path / "bad.toml", text)
    with pytest.raises(MtdtlError) as e:
        load_sweep(f)
    msg = str(e.value)
    assert str(f) in msg
    for w in words:
        assert w in msg, (w, msg)


def test_data_needs_demo_size_or_store(tmp_path):
    with pytest.raises(MtdtlError, match=r"\[data\].*demo_size.*store"):
        load_sweep(_write(tmp_path / "x.toml", "[train]\nepochs = 1\n"))
    with pytest.raises(MtdtlError, match="not valid TOML"):
        load_sweep(_write(tmp_path / "y.toml", "[data\n"))


def test_write_sweep_round_trip(tmp_path):
    f = write_sweep(tmp_path / "s.toml", name="mine", description="a test", data={"demo_size": "tiny"},
                    design={"budget": 3, "sources": ("self", "bpm", "tag", "year"), "seed": 4},
                    train={"epochs": 2, "width": "tiny"}, evaluate={"targets": ["demo"], "repetitions": 1,
                                                                   "target_roots": {}})
    s = load_sweep(f)
    assert s.name == "mine" and s["design"]["budget"] == 3 and s["design"]["sources"] == ["self", "bpm", "tag", "year"]
    assert s["train"]["epochs"] == 2 and s["train"]["batch_size"] == 128  # defaults filled in
    again = load_sweep(_write(tmp_path / "t.toml", s.to_toml()))
    assert again.settings == s.settings
    with pytest.raises(MtdtlError, match=r"\[train\] epochs"):
        write_sweep(tmp_path / "bad.toml", data={"demo_size": "tiny"}, train={"epochs": 0})
    assert not (tmp_path / "bad.toml").exists() and not list(tmp_path.glob(".*"))


def test_write_sweep_top_level_options_and_template(tmp_path):
    f = write_sweep(tmp_path / "a.toml", data={"demo_size": "tiny"}, options={"kernel": "fresh", "html": False})
    a = load_sweep(f)
    assert a[""]["kernel"] == "fresh" and a[""]["html"] is False and a[""]["kernel_notebooks"] == 20
    b = load_sweep(write_sweep(tmp_path / "b.toml", template=f, options={"kernel_notebooks": 5}))
    assert (b[""]["kernel"], b[""]["html"], b[""]["kernel_notebooks"]) == ("fresh", False, 5)
    assert load_sweep(write_sweep(tmp_path / "c.toml", data={"demo_size": "tiny"}))[""]["kernel"] == "warm"
    with pytest.raises(MtdtlError, match="unknown option"):
        write_sweep(tmp_path / "d.toml", data={"demo_size": "tiny"}, options={"kernels": "warm"})
    with pytest.raises(MtdtlError, match="kernel"):
        write_sweep(tmp_path / "e.toml", data={"demo_size": "tiny"}, options={"kernel": "hot"})
    # the runs' figures: PNG only unless the file asks for more; the notebooks get the list
    assert a[""]["figure_formats"] == ["png"]
    f = load_sweep(write_sweep(tmp_path / "f.toml", data={"demo_size": "tiny"},
                               options={"figure_formats": ["png", "pdf"]}))
    assert f[""]["figure_formats"] == ["png", "pdf"]
    spec = f.runspecs()[0]
    train, evaluate = _notebook_params(f, spec, tmp_path / "run", None, tmp_path / "store")
    assert train["figure_formats"] == evaluate["figure_formats"] == "png,pdf"
    _check_notebook_parameters({"02_train": train, "03_evaluate": evaluate})
    with pytest.raises(MtdtlError, match=r"figure_formats: \['jpg'\] not among png, pdf, svg"):
        write_sweep(tmp_path / "g.toml", data={"demo_size": "tiny"}, options={"figure_formats": ["jpg"]})


def test_design_kinds(tmp_path):
    from mtdtl.design import generate_design, write_released

    d = generate_design(budget=5, seed=1, sources=["self", "bpm", "tag", "year"], ss_repetitions=1,
                        all_repetitions=1)
    d.to_csv(tmp_path / "d.csv")
    write_released(d, tmp_path / "r.csv")
    s = load_sweep(_write(tmp_path / "a.toml", "[data]\ndemo_size = \"tiny\"\n[design]\nkind = \"file\"\n"
                                               "file = \"d.csv\"\n[train]\nepochs = 3\n"))
    ids = [r.id for r in s.runspecs()]
    assert ids == [r.id for r in d.to_runspecs(epochs=3, store=s.data_paths()[1])]
    s = load_sweep(_write(tmp_path / "b.toml", "[data]\ndemo_size = \"tiny\"\n[design]\nkind = \"file\"\n"
                                               "file = \"r.csv\"\nsources = [\"self\", \"bpm\", \"tag\", \"year\"]\n"
                                               "ss_repetitions = 1\nall_repetitions = 1\n[train]\nepochs = 3\n"))
    assert [r.id for r in s.runspecs()] == ids
    s = load_sweep(_write(tmp_path / "c.toml", "[data]\ndemo_size = \"tiny\"\n[design]\nkind = \"released\"\n"
                                               "budget = 10\nphases = [3]\nmax_runs = 4\n[train]\nepochs = 3\n"))
    assert len(s.runspecs()) == 4 and set(s.run_table()["phase"]) == {3}


def test_local_cluster_size_never_oversubscribes():
    for cores in (1, 2, 3, 8, 16):
        for n in (1, 2, 5, 100):
            for workers in range(cores + 1):
                w, t, g = local_cluster_size(n, workers=workers, cores=cores, gpus=[])
                assert w * t <= cores and w >= 1 and t >= 1 and g == []
                assert w <= max(1, n) or workers
    assert local_cluster_size(10, cores=2, gpus=[]) == (2, 1, [])
    assert local_cluster_size(1, cores=2, gpus=[]) == (1, 2, [])
    assert local_cluster_size(10, cores=16, gpus=["0", "1"]) == (2, 8, ["0", "1"])
    assert local_cluster_size(10, cores=16, gpus=["0", "1"], device="cpu") == (10, 1, [])
    with pytest.raises(MtdtlError, match="oversubscribe"):
        local_cluster_size(4, workers=3, cores=2, gpus=[])
    with pytest.raises(MtdtlError, match="one run per GPU"):
        local_cluster_size(4, workers=3, cores=16, gpus=["0"])
    with pytest.raises(MtdtlError, match="threads"):
        local_cluster_size(4, workers=2, threads_per_worker=2, cores=2, gpus=[])


def test_cli_registers_subcommands():
    import argparse

    p = argparse.ArgumentParser()
    add_cli(p.add_subparsers(dest="command"))
    a = p.parse_args(["sweep", "run", "x.toml", "--retry-failed", "--workers", "2", "--scheduler", "tcp://h:8786"])
    assert a.retry_failed and a.workers == 2 and a.scheduler == "tcp://h:8786" and callable(a.func)
    for cmd in ("status", "plan", "collect"):
        assert callable(p.parse_args(["sweep", cmd, "x.toml"]).func)


# ---------------------------------------------------------------------------------------------
# run states (fabricated run folders: no training)


def _rows(run: RunSpec, targets, reps):
    import pandas as pd

    return pd.concat([tidy_rows([{m: 0.5}] * reps, identity=run.identity_columns(), target=t,
                                task={"accuracy": "classification", "r2": "regression"}.get(m, "recommendation"))
                      for t, m in targets])


def test_status_done_failed_running_pending(tmp_path):
    corpus = _fake_corpus(tmp_path / "corpus")
    sweep = load_sweep(_small_sweep(tmp_path, corpus, tmp_path / "store"))
    specs = sweep.runspecs()
    assert len(specs) == 3 + 5 + 1
    targets = sweep.expected_targets()
    assert targets == [("demo:genre", "accuracy"), ("demo:listening", "ndcg@500"), ("demo:note_density", "r2")]
    f = [sweep.run_folder(s) for s in specs]
    # 0: complete -> done (even with a stale "failed" status); 1: a repetition missing -> pending
    ResultsTable(f[0] / "evaluate" / "results.csv").append(_rows(specs[0], targets, 2))
    (f[0] / STATUS_NAME).write_text(json.dumps({"state": "failed", "error": "old"}))
    partial = _rows(specs[1], targets, 2)
    ResultsTable(f[1] / "evaluate" / "results.csv").append(partial.iloc[:-1])
    assert missing_rows(f[1] / "evaluate" / "results.csv", run=specs[1].id, targets=targets, repetitions=2) == [
        ("demo:note_density", "r2", 1)]
    # 2: failed; 3: running (its driver alive) or interrupted (its driver gone)
    f[2].mkdir(parents=True)
    (f[2] / STATUS_NAME).write_text(json.dumps({"state": "failed", "error": "ValueError: boom"}))
    f[3].mkdir(parents=True)
    (f[3] / STATUS_NAME).write_text(json.dumps({"state": "running"}))
    st = sweep_status(sweep).set_index("run")
    assert st.loc[specs[0].id, "state"] == "done"
    assert st.loc[specs[1].id, "state"] == "pending" and st.loc[specs[1].id, "missing"] == 1
    assert st.loc[specs[2].id, "state"] == "failed" and st.loc[specs[2].id, "error"] == "ValueError: boom"
    assert st.loc[specs[3].id, "state"] == "pending" and st.loc[specs[3].id, "note"] == "interrupted"
    assert (st.loc[[s.id for s in specs[4:]], "state"] == "pending").all()
    assert st.loc["baselines", "state"] == "pending" and st.loc["baselines", "kind"] == "baselines"
    with _driver_lock(sweep.out):
        assert sweep_status(sweep).set_index("run").loc[specs[3].id, "state"] == "running"
        with pytest.raises(MtdtlError, match="another sweep driver"), _driver_lock(sweep.out):
            pass
    # another protocol's rows do not count
    other = _rows(specs[4], targets, 2)
    other["protocol"] = "paper-0"
    ResultsTable(f[4] / "evaluate" / "results.csv").append(other)
    assert sweep_status(sweep).set_index("run").loc[specs[4].id, "state"] == "pending"
    df = collect_sweep(sweep)
    assert set(df["run"]) == {specs[0].id, specs[1].id, specs[4].id} and sweep.results_path.is_file()
    # a run folder of an earlier design (not a run of this one) is kept but not collected
    stale = RunSpec("ms_cr@2", "self,bpm", seed=7, epochs=specs[0].epochs, width=specs[0].width,
                    store=specs[0].store)
    ResultsTable(sweep.run_folder(stale) / "evaluate" / "results.csv").append(_rows(stale, targets, 2))
    assert stale.id not in set(collect_sweep(sweep)["run"]) and sweep.run_folder(stale).is_dir()


def test_plan_counts_follow_the_training_loop(tiny_corpus, tiny_store, tmp_path):
    from mtdtl.sources import load_reduced
    from mtdtl.store import SpectrogramStore
    from mtdtl.training.sampling import epoch_length, source_data

    sweep = load_sweep(_small_sweep(tmp_path, tiny_corpus, tiny_store))
    plan = sweep_plan(sweep, calibrate_here=False)
    assert plan.totals["runs"] == 9 and plan.totals["pending"] == 9 and plan.totals["model_epochs"] == 9
    st = SpectrogramStore.open(tiny_store)
    for r in plan.runs.itertuples():
        srcs = r.sources.split("+")
        train = source_data(st, load_reduced(tiny_store, sources=srcs), "train", srcs)
        L = epoch_length(train, 8)
        # an epoch: L iterations, one source each (uniform); self batches are pairs (2 crops each)
        expect = L * sum(min(8, len(train[s])) * (2 if s == "self" else 1) for s in srcs) / len(srcs)
        assert r.samples_per_epoch == pytest.approx(expect) and r.train_samples == pytest.approx(expect)
    assert "runs: 9" in plan.report()


@pytest.mark.slow
def test_plan_with_calibration(tiny_corpus, tiny_store, tmp_path):
    sweep = load_sweep(_small_sweep(tmp_path, tiny_corpus, tiny_store))
    plan = sweep_plan(sweep, steps=1)
    c = plan.calibration
    assert set(c["train_rate"]) == set(plan.runs["arch"]) and all(v > 0 for v in c["train_rate"].values())
    assert c["infer_rate"] > 0 and c["kernel_s"] > 0 and c["machine"]["cores"] >= 1
    assert plan.totals["projected_s"] > 0 and plan.paper["cpu_hours"] > 0 and plan.paper["runs"] == 425
    text = plan.report()
    assert "the paper's study" in text and ("no GPU figures" in text or "GPU-hours" in text)


# ---------------------------------------------------------------------------------------------
# end to end: papermill on a LocalCluster (slow)


def _tiny_sweep(tmp_path: Path, corpus: Path, store: Path, *, workers: int = 0, baselines='["mfcc", "rand"]') -> Path:
    return _write(tmp_path / "tiny.toml", f"""
name = "tiny"
[data]
corpus = "{corpus}"
store = "{store}"
[design]
sources = ["self", "bpm", "tag"]
budget = 0
ss_repetitions = 1
all_repetitions = 0
max_runs = 2
[train]
epochs = 1
width = "tiny"
batch_size = 8
[evaluate]
targets = ["demo:genre", "demo:note_density"]
repetitions = 1
baselines = {baselines}
[dask]
workers = {workers}
""")


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_sweep_end_to_end_failure_resume_retry(tiny_corpus, tiny_store, tmp_path):
    sweep = load_sweep(_tiny_sweep(tmp_path, tiny_corpus, tiny_store))
    first, second = sweep.runspecs()
    # a run that fails: a damaged training state in its folder (02_train cannot resume from it)
    bad = sweep.run_folder(second) / "train_state.safetensors"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a safetensors file")
    report = run_sweep(sweep, progress=False)
    st = report.status.set_index("run")
    assert st.loc[first.id, "state"] == "done"
    assert st.loc[second.id, "state"] == "failed" and st.loc[second.id, "error"]
    assert st.loc["baselines", "state"] == "done"
    nb = json.loads((sweep.run_folder(second) / "02_train.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", [])), \
        "the failing run keeps its executed notebook with the traceback"
    folder = sweep.run_folder(first)
    for name in ("run.json", "02_train.ipynb", "03_evaluate.ipynb", "model.safetensors", "metrics.json",
                 "evaluate/results.csv", STATUS_NAME):
        assert (folder / name).is_file(), name
    res = ResultsTable(sweep.results_path).read()
    assert set(res["run"]) == {first.id, "mfcc", "rand-ss_r-seed0-tiny"}
    assert set(res["target"]) == {"demo:genre", "demo:note_density"} and res["value"].notna().all()
    assert json.loads((sweep.baselines_dir / STATUS_NAME).read_text())["scaler_run"].endswith(first.id)
    # again: nothing finished is redone, the failed run is left alone
    before = _hashes(folder)
    again = run_sweep(sweep, progress=False)
    assert again.submitted == 0 and _hashes(folder) == before
    assert again.status.set_index("run").loc[second.id, "state"] == "failed"
    # fixed and retried
    bad.unlink()
    retry = run_sweep(sweep, retry_failed=True, progress=False)
    assert retry.submitted == 1 and (retry.status["state"] == "done").all()
    assert _hashes(folder) == before
    assert set(ResultsTable(sweep.results_path).read()["run"]) == {first.id, second.id, "mfcc",
                                                                    "rand-ss_r-seed0-tiny"}


@pytest.mark.slow
def test_sweep_survives_kill_9(tiny_corpus, tiny_store, tmp_path):
    import psutil

    sweep = load_sweep(_tiny_sweep(tmp_path, tiny_corpus, tiny_store, workers=1, baselines="[]"))
    first, second = sweep.runspecs()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "mtdtl.sweep", "-q", "run", str(sweep.file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = sweep.run_folder(first) / STATUS_NAME
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            if status.is_file() and json.loads(status.read_text()).get("state") == "done":
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert json.loads(status.read_text())["state"] == "done", "the first run did not finish in time"
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    # the workers and their notebook kernels follow the driver
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, f"processes left behind by the killed sweep: {[p.pid for p in alive]}"
    before = _hashes(sweep.run_folder(first))
    st = sweep_status(sweep).set_index("run")
    assert st.loc[first.id, "state"] == "done" and st.loc[second.id, "state"] == "pending"
    report = run_sweep(sweep, progress=False)
    assert report.submitted == 1 and (report.status["state"] == "done").all()
    assert _hashes(sweep.run_folder(first)) == before, "a finished run was touched"
    assert set(collect_sweep(sweep)["run"]) == {first.id, second.id}


@pytest.mark.slow
def test_warm_and_fresh_kernels_give_the_same_results(tiny_corpus, tiny_store, tmp_path):
    """kernel = "warm" (one kernel for every notebook of a worker) changes nothing in the results."""
    tables = {}
    for kernel in ("warm", "fresh"):
        (tmp_path / kernel).mkdir()
        f = _tiny_sweep(tmp_path / kernel, tiny_corpus, tiny_store, workers=1, baselines="[]")
        f.write_text(f.read_text().replace('name = "tiny"', f'name = "tiny"\nkernel = "{kernel}"', 1))
        sweep = load_sweep(f)
        assert sweep[""]["kernel"] == kernel
        report = run_sweep(sweep, progress=False)
        assert report.submitted == 2 and (report.status["state"] == "done").all()
        cols = ["run", "target", "metric", "repetition", "value"]
        tables[kernel] = collect_sweep(sweep)[cols].sort_values(cols[:4]).reset_index(drop=True)
    assert len(tables["warm"]) == 4
    import pandas as pd

    pd.testing.assert_frame_equal(tables["warm"], tables["fresh"])


def test_sweep_from_design_keeps_the_template(tmp_path):
    from mtdtl.design import generate_design
    from mtdtl.sweep import sweep_from_design

    f = sweep_from_design(budget=4, seed=2, repetitions="1,1", sources="self,bpm,tag,year", template="debug",
                          out=tmp_path / "mine.toml")
    s = load_sweep(f)
    debug = load_sweep("debug")
    assert s["train"] == debug["train"] and s["evaluate"] == debug["evaluate"]
    assert s.data_paths() == debug.data_paths() and s.out == (tmp_path / "mine").resolve()
    want = generate_design(budget=4, seed=2, sources=["self", "bpm", "tag", "year"], archs=debug["design"]["archs"],
                           ss_repetitions=1, all_repetitions=1)
    assert [r.id for r in s.runspecs()] == [r.id for r in want.to_runspecs(epochs=2, width="tiny", batch_size=32)]
    # an imported design file: the sweep reads that file
    want.to_csv(tmp_path / "d.csv")
    g = load_sweep(sweep_from_design(budget=3, design=tmp_path / "d.csv", template=f, out=tmp_path / "imp.toml"))
    assert g["design"]["kind"] == "file" and len(g.design().phase3) == 3
    with pytest.raises(MtdtlError, match="repetitions"):
        sweep_from_design(budget=4, repetitions="six", template="debug", out=tmp_path / "x.toml")


def test_module_command_line(tmp_path):
    corpus = _fake_corpus(tmp_path / "corpus")
    f = _small_sweep(tmp_path, corpus, tmp_path / "store")
    out = subprocess.run([sys.executable, "-m", "mtdtl.sweep", "status", str(f)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert "pending 10" in out.stdout
    out = subprocess.run([sys.executable, "-m", "mtdtl.sweep", "run", str(f)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 2 and "[data] store" in out.stderr and "not a finished spectrogram store" in out.stderr
