"""The pieces train.py adds around the Trainer, on their own."""

import json

import pytest

from textlora.train import last_complete_checkpoint, losses_between_evaluations


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


def test_training_loss_of_an_evaluation_is_the_mean_of_the_steps_since_the_previous_one():
    history = [
        {"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 2},
        {"eval_loss": 0.7, "step": 2},  # evaluated after step 2
        {"loss": 0.3, "step": 3}, {"loss": 0.1, "step": 4},
        {"eval_loss": 0.6, "step": 4},
        {"train_loss": 0.6, "step": 4},  # the Trainer's summary line is not a step
    ]
    assert losses_between_evaluations(history) == {2: pytest.approx(0.75), 4: pytest.approx(0.2)}


def test_a_fractional_last_epoch_gets_its_own_row(tiny_bert_dir, reviews_csv, tmp_path):
    """train.epochs: 1.5 evaluates at epoch 1 and at 1.5: two rows, each with its own label and
    training loss (a rounded label once gave two rows called 1, the second without its loss)."""
    from conftest import tiny_overrides

    from textlora.config import load_config
    from textlora.pipeline import run_experiment

    cfg = load_config(None, tiny_overrides(tiny_bert_dir, reviews_csv, tmp_path, name="frac", baselines="[]",
                                           **{"train.epochs": 1.5, "data.n_train": 96}))
    metrics = json.loads((run_experiment(cfg, quiet=True, say=lambda *_: None) / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 1.5]
    assert all(row["train_loss"] is not None and row["seconds"] is not None for row in metrics["epochs"])
