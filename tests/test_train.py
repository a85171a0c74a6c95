"""The pieces train.py adds around the Trainer, on their own."""

import json

import pytest

from textlora.train import epoch_train_losses, last_complete_checkpoint


def test_half_written_checkpoints_are_skipped_and_removed(tmp_path):
    for step in (4, 8):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-12").mkdir()  # killed before trainer_state.json was written
    (tmp_path / "checkpoint-16").mkdir()
    (tmp_path / "checkpoint-16" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-8"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_epoch_training_loss_is_the_mean_of_its_steps():
    history = [
        {"loss": 1.0, "epoch": 0.5}, {"loss": 0.5, "epoch": 1.0},  # the last step of epoch 1 is logged at 1.0
        {"eval_loss": 0.7, "epoch": 1.0},
        {"loss": 0.3, "epoch": 1.5}, {"loss": 0.1, "epoch": 2.0},
        {"train_loss": 0.6, "epoch": 2.0},  # the Trainer's summary line is not a step
    ]
    assert epoch_train_losses(history) == {1: pytest.approx(0.75), 2: pytest.approx(0.2)}
