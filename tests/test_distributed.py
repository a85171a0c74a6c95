"""The same `textlora train` under torchrun with 2 CPU processes (DDP over gloo)."""

import json
import subprocess
import sys

import pytest

from conftest import tiny_overrides


# accelerate's --cpu flag starts one process (its multi-CPU mode goes through
# mpirun); --multi_gpu starts torch's elastic launcher, which on a machine
# without a GPU runs the processes as DDP over gloo, like torchrun.
LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"],
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2",
                   "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no", "--main_process_port=29518"],
}


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_two_process_training_matches_single_process(launcher, tiny_bert_dir, reviews_csv, tmp_path, tiny_run):
    out = tmp_path / "runs"
    sets = [a for o in tiny_overrides(tiny_bert_dir, reviews_csv, out, name="ddp", baselines="[]",
                                      **{"train.batch_size": 8}) for a in ("--set", o)]
    # batch 8 per process x 2 processes = the single run's batch of 16; the
    # same command a user types, with no change for multi-process.
    command = [*LAUNCHERS[launcher], "-m", "textlora.cli", "train", "--quiet", *sets]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**__import__("os").environ,
                            "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    run = out / "ddp"
    assert {p.name for p in run.iterdir()} == {p.name for p in tiny_run.iterdir()}  # what a single process writes
    assert not list(out.glob(".*"))  # no partial folder left by any rank
    metrics = json.loads((run / "metrics.json").read_text())
    single = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["timing"]["processes"] == 2
    assert metrics["final"]["n"] == single["final"]["n"]  # the whole test split, not a shard
    assert metrics["final"]["accuracy"] == pytest.approx(single["final"]["accuracy"], abs=0.1)
    assert result.stdout.count("Epoch") <= 1  # only rank 0 prints the table
