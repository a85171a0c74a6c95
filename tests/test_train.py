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


def test_length_grouped_batches_come_in_a_seeded_random_order_not_a_sawtooth():
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from textlora.train import ShuffledLengthGroupedSampler

    lengths = [int(x) for x in torch.randint(5, 300, (1603,), generator=torch.Generator().manual_seed(0))]
    size = 8

    def batches(indices):
        return [indices[i:i + size] for i in range(0, len(indices), size)]

    sampler = ShuffledLengthGroupedSampler(size, lengths=lengths, seed=42)
    served = batches(list(sampler))
    grouped = batches(get_length_grouped_indices(lengths, size, generator=torch.Generator().manual_seed(42)))
    # The same batches as transformers' grouping (so the same padding), every row once.
    assert sorted(map(sorted, served)) == sorted(map(sorted, grouped))
    assert sorted(i for b in served for i in b) == list(range(len(lengths)))
    # The longest batch first, the short remainder (1603 = 200 x 8 + 3) last.
    assert max(lengths[i] for i in served[0]) == max(lengths)
    assert len(served[-1]) == 3 and served[-1] == grouped[-1]
    # transformers' order falls in length through each mega-batch of 50 batches; this one does not.
    longest = [max(lengths[i] for i in b) for b in served[:-1]]
    falls = sum(a >= b for a, b in zip(longest, longest[1:])) / (len(longest) - 1)
    grouped_longest = [max(lengths[i] for i in b) for b in grouped[:-1]]
    grouped_falls = sum(a >= b for a, b in zip(grouped_longest, grouped_longest[1:])) / (len(grouped_longest) - 1)
    assert grouped_falls > 0.95 and 0.3 < falls < 0.7
    # The order is a function of (seed, epoch): the same again, another one next epoch.
    assert batches(list(sampler)) == served
    sampler.set_epoch(1)
    assert batches(list(sampler)) != served
    sampler.set_epoch(0)
    assert batches(list(sampler)) == served
    ShuffledLengthGroupedSampler.shuffle_batches = False
    try:
        assert batches(list(sampler)) == grouped
    finally:
        ShuffledLengthGroupedSampler.shuffle_batches = True
