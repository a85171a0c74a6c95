"""`--quick`: the overrides that shrink any recipe to a run of seconds.

Used by `textlora train --quick` and `textlora sweep --quick` to check that a
recipe runs end to end (on the real model, or on a tiny one with --model)
before spending hours on it. The numbers it produces mean nothing.
"""

from __future__ import annotations

QUICK = {
    "data.n_train": 64,
    "data.n_eval": 32,
    "data.validation_size": 16,  # a row count: a fraction of 64 rows is too few to stratify
    "train.epochs": 1,
    "model.max_length": 64,
    "model.head_tokens": 32,  # only read with truncation: head_tail, where it must stay below max_length
}


def quick_overrides(recipe: str | None = None) -> list[str]:
    """`key=value` overrides for a quick run; put them before the user's own --set so those win.

    A recipe that oversamples to a row count (seed 004: 800 per class) would
    turn 64 rows into thousands; quick mode oversamples to the largest class.
    """
    overrides = [f"{key}={value}" for key, value in QUICK.items()]
    if recipe is not None:
        from textlora.config import read_recipe

        if isinstance((read_recipe(recipe).get("data") or {}).get("oversample"), int):
            overrides.append("data.oversample=majority")
    return overrides
