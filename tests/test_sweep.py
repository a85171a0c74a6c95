"""Sweeps on the tiny BERT: grid parsing, a rank sweep through the real command, resuming,
Optuna, Ray Tune (2 trials on CPU), and TensorBoard tracking."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import pytest

from conftest import sets, tiny_overrides
from textlora.cli import main
from textlora.errors import TextloraError
from textlora.sweep import Range, grid_points, parse_grid, parse_trials, point_name, short_keys

PNG = b"\x89PNG\r\n\x1a\n"


def small(tiny_bert_dir, reviews_csv, tmp_path, **extra) -> list[str]:
    """Runs of a few seconds: 48 training rows, 1 epoch, no baselines."""
    settings = {"train.epochs": 1, "data.n_train": 48, "data.n_eval": 32, "data.validation_size": 16,
                "baselines": "[]", **extra}
    return tiny_overrides(tiny_bert_dir, reviews_csv, tmp_path / "unused", **settings)




# --------------------------------------------------------------------------- parsing (no training)


def test_grid_values_are_typed_and_named():
    space = parse_grid(["lora.r=4,8,16", "train.learning_rate=1e-4,5e-4",
                        "lora.target_modules=[query,value],[query,key,value]", "method=lora,full"])
    assert space["lora.r"] == [4, 8, 16]
    assert space["train.learning_rate"] == [0.0001, 0.0005]  # YAML 1.1 alone would leave "1e-4" a string
    assert space["lora.target_modules"] == [["query", "value"], ["query", "key", "value"]]
    points = grid_points(space)
    assert len(points) == 3 * 2 * 2 * 2
    keys = short_keys(space)
    assert point_name(points[0], keys) == "r=4,learning_rate=0.0001,target_modules=query+value,method=lora"
    assert point_name({"train.learning_rate": 5e-5}) == "learning_rate=5e-05"
    # Keys whose last part clashes keep their full dotted name.
    assert short_keys(["a.r", "b.r", "lora.alpha"]) == {"a.r": "a.r", "b.r": "b.r", "lora.alpha": "alpha"}
    assert point_name({"data.source": "x/y z"}) == "source=x-y-z"


def test_ranges_and_explicit_trials():
    space = parse_grid(["train.learning_rate=1e-5..1e-3:log", "lora.r=2..16"])
    assert space["train.learning_rate"] == Range(1e-5, 1e-3, log=True)
    assert space["lora.r"] == Range(2, 16) and space["lora.r"].integer
    with pytest.raises(TextloraError, match="ranges need --search optuna"):
        grid_points(space)
    trials = parse_trials(["train.learning_rate=5e-5 train.batch_size=8 train.epochs=3",
                           "train.learning_rate=3e-4 train.batch_size=8 train.epochs=4"])
    assert trials[1] == {"train.learning_rate": 0.0003, "train.batch_size": 8, "train.epochs": 4}
    points = grid_points(parse_grid(["lora.r=8,16"]), trials)
    assert [(p["train.epochs"], p["lora.r"]) for p in points] == [(3, 8), (3, 16), (4, 8), (4, 16)]


@pytest.mark.parametrize("spec, pattern", [
    ("lora.r", "must look like key=value"),
    ("name=a,b", "cannot sweep 'name'"),
    ("lora.r=4,,8", "empty value"),
    ("lora.r=4,4", "lists a value twice"),
    ("lora.dropout=0.5..0.1", "LOW < HIGH"),
])
def test_bad_grid(spec, pattern):
    with pytest.raises(TextloraError, match=pattern):
        parse_grid([spec])


def test_every_point_validates_before_any_runs(tiny_bert_dir, reviews_csv, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp_path)), "--grid", "lora.r=4,0",
                 "--out", str(out)])
    assert code == 2
    assert "lora.r must be a positive integer" in capsys.readouterr().err
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())


# --------------------------------------------------------------------------- a rank sweep, end to end


@pytest.fixture(scope="module")
def rank_sweep(tiny_bert_dir, reviews_csv, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rank")
    out = tmp / "sweep"
    args = ["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp)), "--grid", "lora.r=2,4,8", "--out", str(out),
            "--quiet"]
    assert main(args) == 0
    return out, args


def test_rank_sweep_writes_runs_table_and_plots(rank_sweep):
    out, _ = rank_sweep
    names = ["r=2", "r=4", "r=8"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == names
    assert all((out / "runs" / n / "run.json").is_file() for n in names)

    with open(out / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    scores = [float(r["validation accuracy"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    for row in rows:
        metrics = json.loads((out / "runs" / row["run"] / "metrics.json").read_text())
        r = int(row["r"])
        # 2 layers x (query, value) x (A: r x 32 + B: 32 x r) + the head (32 x 2 + 2): exact, as peft counts.
        assert int(row["trainable"].replace(",", "")) == metrics["params"]["trainable"] == 2 * 2 * 64 * r + 66
        selected = [e for e in metrics["epochs"] if e["selected"]]
        assert float(row["validation accuracy"]) == pytest.approx(selected[0]["accuracy"], abs=1e-4)
        assert float(row["test accuracy"]) == pytest.approx(metrics["final"]["accuracy"], abs=1e-4)

    plots = {p.name for p in (out / "plots").iterdir()}
    assert plots == {"accuracy_vs_r.png", "time_vs_r.png", "params_vs_r.png", "time_vs_accuracy.png",
                     "loss_curves.png", "comparison.png"}
    for name in plots:
        data = (out / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    summary = (out / "summary.md").read_text()
    assert "| run | r | validation accuracy |" in summary
    assert summary.count("](plots/") == len(plots)
    spec = json.loads((out / "sweep.json").read_text())
    assert spec["keys"] == ["lora.r"] and [p["name"] for p in spec["points"]] == names


def test_rerun_continues_where_it_stopped(rank_sweep, capsys):
    out, args = rank_sweep
    before = {p.name: (p / "run.json").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    # One point lost (as if the sweep stopped before it): only that one trains again.
    import shutil

    shutil.rmtree(out / "runs" / "r=4")
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 point(s), 2 already finished, 1 to run" in printed
    after = {p.name: (p / "run.json").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert after["r=2"] == before["r=2"] and after["r=8"] == before["r=8"]
    assert set(after) == set(before)


def test_rerun_with_another_config_is_refused(rank_sweep, capsys):
    out, args = rank_sweep
    assert main([*args, "--set", "lora.alpha=32"]) == 2
    assert "trained with a different config (lora.alpha differ)" in capsys.readouterr().err


# --------------------------------------------------------------------------- Optuna, Ray Tune


@pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="optuna not installed: pip install 'textlora[sweep]'")
def test_optuna_search(tiny_bert_dir, reviews_csv, tmp_path, capsys):
    out = tmp_path / "optuna"
    args = ["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp_path)), "--search", "optuna", "--trials", "2",
            "--grid", "lora.r=2,4", "--grid", "train.learning_rate=1e-3..1e-2:log", "--out", str(out), "--quiet"]
    assert main(args) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert 1 <= len(runs) <= 2 and all(n.startswith("r=") and ",learning_rate=" in n for n in runs)
    for name in runs:
        lr = float(name.split("learning_rate=")[1])
        assert 1e-3 <= lr <= 1e-2
        config = (out / "runs" / name / "config.yaml").read_text()
        assert f"learning_rate: {lr}" in config
    import optuna

    study = optuna.load_study(study_name="textlora", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    capsys.readouterr()
    assert main(args) == 0  # the study is complete: nothing more runs
    assert "2 trial(s) finished before, 0 to run" in capsys.readouterr().out


CI = os.environ.get("CI") == "true"


# Under CI the Ray test always runs (ray[tune] is in the test extras: 12.5 s to install, the test
# 44 s on 2 cores, measured); locally it is opt-in, and a missing Ray skips there but fails in CI.
@pytest.mark.skipif(not CI and os.environ.get("TEXTLORA_TEST_RAY") != "1",
                    reason="a local Ray cluster takes ~45 s to start and run 2 trials on 2 cores; "
                    "run it with TEXTLORA_TEST_RAY=1 (CI runs it)")
def test_ray_backend_runs_two_trials(tiny_bert_dir, reviews_csv, tmp_path):
    if importlib.util.find_spec("ray") is None:
        reason = "Ray Tune not installed (pip install 'textlora[ray]', or the test extras)"
        if CI:
            pytest.fail(f"{reason}; under CI=true the Ray test must run, not skip", pytrace=False)
        pytest.skip(reason)
    out = tmp_path / "ray"
    args = ["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp_path)), "--grid", "lora.r=2,4", "--backend", "ray",
            "--cpus-per-trial", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["r=2", "r=4"]
    for name, r in (("r=2", 2), ("r=4", 4)):
        metrics = json.loads((out / "runs" / name / "metrics.json").read_text())
        assert metrics["params"]["trainable"] == 256 * r + 66
    # Ray Tune's own record of the two trials sits beside the runs.
    results = list((out / "ray" / "tune").glob("*/result.json"))
    assert len(results) == 2
    reported = [json.loads(p.read_text().splitlines()[-1]) for p in results]
    assert sorted(Path(r["run_dir"]).name for r in reported) == ["r=2", "r=4"]
    for trial in reported:  # what Ray was told is the run's own selected validation score and test score
        metrics = json.loads((Path(trial["run_dir"]) / "metrics.json").read_text())
        selected = [e for e in metrics["epochs"] if e["selected"]][0]
        assert trial["val_accuracy"] == selected["accuracy"] and trial["test_accuracy"] == metrics["final"]["accuracy"]
    with open(out / "summary.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2


# --------------------------------------------------------------------------- tracking


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard not installed: pip install 'textlora[tracking]'")
def test_tensorboard_event_files_stay_with_the_run(tiny_bert_dir, reviews_csv, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    overrides = small(tiny_bert_dir, reviews_csv, tmp_path, **{"train.report_to": "tensorboard", "name": "tb",
                                                              "train.epochs": 2})
    overrides = [o for o in overrides if not o.startswith("output_dir=")] + [f"output_dir={tmp_path / 'runs'}"]
    run_dir = run_experiment(load_config(None, overrides), quiet=True, say=lambda *_: None)
    events = list((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert events, f"no TensorBoard event file under {run_dir / 'logs'}"
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    accuracy = accumulator.Scalars("eval/accuracy")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [round(s.value, 5) for s in accuracy] == [round(e["accuracy"], 5) for e in metrics["epochs"]]


# --------------------------------------------------------------------------- failing points


def last_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tiny_bert_dir, reviews_csv, tmp_path, capsys):
    """max_length 100000 passes config validation but not the tiny BERT's 128 positions: that point
    fails with its one-line error, the other still runs, and the summary marks the failure."""
    out = tmp_path / "sweep"
    args = ["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp_path)), "--grid", "model.max_length=100000,32",
            "--out", str(out), "--quiet"]
    assert main(args) == 2
    captured = capsys.readouterr()
    error = last_error_line(captured.err)
    assert error.startswith("error: 1 point(s) failed, the summary marks them (max_length=100000: "
                            "model.max_length 100000 is more than"), error
    assert "re-run the same command to retry only those" in error
    assert "failed: model.max_length 100000 is more than" in captured.out
    assert "[2/2] max_length=32 ..." in captured.out  # the sweep went on after the failure
    # The failed point left nothing behind; the other is a finished run.
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["max_length=32"]
    assert (out / "runs" / "max_length=32" / "run.json").is_file()

    spec = json.loads((out / "sweep.json").read_text())
    errors = {p["name"]: p.get("error") for p in spec["points"]}
    assert errors["max_length=32"] is None and "(128 positions)" in errors["max_length=100000"]
    with open(out / "summary.csv") as handle:
        rows = {row["run"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"max_length=32", "max_length=100000"}
    assert rows["max_length=100000"]["validation accuracy"] == "failed"
    assert rows["max_length=100000"]["error"] == errors["max_length=100000"]
    assert rows["max_length=32"]["error"] == "" and 0 <= float(rows["max_length=32"]["validation accuracy"]) <= 1
    summary = (out / "summary.md").read_text()
    assert "| failed |" in summary and "1 point(s) failed" in summary

    # Re-running retries only the failed point.
    assert main(args) == 2
    assert "2 point(s), 1 already finished, 1 to run" in capsys.readouterr().out


def test_an_internal_error_in_a_point_keeps_its_traceback(tiny_bert_dir, reviews_csv, tmp_path, capsys,
                                                          monkeypatch):
    """A bug (not a TextloraError) fails its point too, with the last line of its message, and its
    traceback is kept under errors/; a sweep where nothing finished still writes its summary."""
    import textlora.sweep as sweep_module

    def crash(cfg, overwrite, metric, say):
        raise RuntimeError("while training\nThe size of tensor a (738) must match the size of tensor b (512)")

    monkeypatch.setattr(sweep_module, "run_one", crash)
    out = tmp_path / "sweep"
    args = ["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp_path)), "--grid", "lora.r=2,4", "--out", str(out)]
    assert main(args) == 2
    captured = capsys.readouterr()
    error = last_error_line(captured.err)
    assert "2 point(s) failed" in error and "RuntimeError: The size of tensor a (738) must match" in error
    assert "and 1 more" in error
    for name in ("r=2", "r=4"):
        log = (out / "errors" / f"{name}.txt").read_text()
        assert "Traceback" in log and "RuntimeError" in log and "in crash" in log
    with open(out / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["validation accuracy"] for r in rows] == ["failed", "failed"]
    assert all(r["error"].startswith("RuntimeError: The size of tensor a (738)") for r in rows)
    assert "No plots: no point finished." in (out / "summary.md").read_text()


def test_repeats_train_each_point_with_several_seeds_and_summarise_the_spread(tiny_bert_dir, reviews_csv, tmp_path,
                                                                             capsys):
    import numpy as np
    from scipy import stats

    out = tmp_path / "rep"
    args = ["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp_path)), "--grid", "lora.r=2", "--repeats", "3",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["r=2,seed=42", "r=2,seed=43", "r=2,seed=44"]
    tests = [json.loads((out / "runs" / n / "metrics.json").read_text())["final"]["accuracy"]
             for n in ("r=2,seed=42", "r=2,seed=43", "r=2,seed=44")]
    summary = (out / "summary.md").read_text()
    assert "## Over seeds" in summary
    mean, sd = np.mean(tests), np.std(tests, ddof=1)
    half = stats.t.ppf(0.975, 2) * sd / np.sqrt(3)
    assert f"{mean:.4f} ± {sd:.4f}" in summary
    assert f"[{mean - half:.4f}, {mean + half:.4f}]" in summary
    assert "| 2 | 3 |" in summary  # r=2, three seeds
    printed = capsys.readouterr().out
    assert "test 95 % CI of the mean" in printed


@pytest.mark.parametrize("extra, pattern", [
    (["--repeats", "0"], r"--repeats must be >= 1"),
    (["--repeats", "2", "--grid", "seed=1,2"], r"give either --repeats or --grid seed"),
])
def test_bad_repeats(extra, pattern, tiny_bert_dir, reviews_csv, tmp_path, capsys):
    import re

    args = ["sweep", *sets(small(tiny_bert_dir, reviews_csv, tmp_path)), "--grid", "lora.r=2", *extra,
            "--out", str(tmp_path / "bad")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and re.search(pattern, err[0]), err
    assert not (tmp_path / "bad").exists()
