"""Reliability: reproducible runs, and a SIGKILLed run resumed to the same result."""

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import tiny_overrides
from textlora.errors import TextloraError

VOLATILE = ("name", "seconds", "timing", "created", "peak_memory", "samples_per_second", "versions", "runtime")


def stable(value):
    """metrics.json without the keys that measure time or memory."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if not any(word in k for word in VOLATILE)}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def train(tiny_bert_dir, reviews_csv, out, name, *extra, **settings):
    args = [a for o in tiny_overrides(tiny_bert_dir, reviews_csv, out, name=name, **settings) for a in ("--set", o)]
    return subprocess.Popen([sys.executable, "-m", "textlora.cli", "train", "--quiet", *args, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SETTINGS = {"train.epochs": 3, "train.save_steps": 4, "baselines": "[pre_adaptation]"}


def test_same_seed_same_metrics_and_killed_run_resumes_to_the_same_result(tiny_bert_dir, reviews_csv, tmp_path):
    out = tmp_path / "runs"
    reference = train(tiny_bert_dir, reviews_csv, out, "reference", **SETTINGS)
    twin = train(tiny_bert_dir, reviews_csv, out, "twin", **SETTINGS)
    assert reference.wait(300) == 0, reference.stderr.read()
    assert twin.wait(300) == 0, twin.stderr.read()
    first = json.loads((out / "reference" / "metrics.json").read_text())
    second = json.loads((out / "twin" / "metrics.json").read_text())
    assert stable(first) == stable(second)

    # Kill a run with SIGKILL in the middle of its second epoch (255 training
    # rows: 16 steps per epoch; checkpoints every 4 steps), the hard case: the
    # resumed run must skip the batches already seen of an epoch whose order
    # was drawn after a whole epoch of dropout had used the random generator.
    victim = train(tiny_bert_dir, reviews_csv, out, "victim", **SETTINGS)
    partial = out / ".victim.partial"
    deadline = time.time() + 240
    while time.time() < deadline and not (partial / "checkpoints" / "checkpoint-20" / "trainer_state.json").is_file():
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    assert partial.is_dir() and not (out / "victim").exists()
    assert json.loads((partial / "run.json").read_text())["finished"] is False

    # An unfinished run is never taken for a finished one...
    from textlora.runs import open_run

    with pytest.raises(TextloraError, match="did not finish"):
        open_run(partial)
    # ...nor silently replaced.
    again = train(tiny_bert_dir, reviews_csv, out, "victim", **SETTINGS)
    assert again.wait(120) == 2 and "--resume" in again.stderr.read()

    resumed = train(tiny_bert_dir, reviews_csv, out, "victim", "--resume", **SETTINGS)
    assert resumed.wait(300) == 0, resumed.stderr.read()
    after = json.loads((out / "victim" / "metrics.json").read_text())
    assert after["timing"]["resumed"] is True
    assert not partial.exists()
    for key in ("accuracy", "loss", "f1", "roc_auc"):
        assert after["final"][key] == pytest.approx(first["final"][key], abs=1e-6), key
    assert [e["epoch"] for e in after["epochs"]] == [1, 2, 3]
    for mine, theirs in zip(after["epochs"], first["epochs"]):
        assert mine["loss"] == pytest.approx(theirs["loss"], abs=1e-6)
        # the interrupted epoch's training loss still averages all its steps
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-6)
