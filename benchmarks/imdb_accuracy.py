"""IMDB accuracy within a training budget: textlora on MiniLM against TF-IDF + LR, on the full test set.

    python benchmarks/imdb_accuracy.py --data ../shared/data/imdb --budget-minutes 60

One `textlora train` run (textlora.pipeline.run_experiment), as a user
would start it, with:
1. its TF-IDF + logistic regression row: fitted on the 24,000 training
   reviews, scored on all 25,000 test reviews;
2. the packaged all-MiniLM-L6-v2 adapted with the settings given (defaults:
   LoRA r=16 on all linear layers, head+tail truncation at 256 tokens), trained on the same 24,000 reviews
   for as many optimizer steps as fit the budget: a short warm-up on other
   rows measures samples/s first, and the number of epochs is set so the
   whole schedule (warm-up and linear decay) ends within the budget;
3. every --trace-every optimizer steps, accuracy on the run's 1,000
   validation reviews (carved from train; never the test set): the curve of
   accuracy against training time, whose clock stops while it evaluates;
4. its final row: the trained model scored by the run on all 25,000 test
   reviews.

Training time, three ways, all written by this script: `train_seconds` (the
run's own figure: the Trainer's whole call, with its per-epoch evaluations and
checkpoints and the trace's evaluations); `train_seconds_without_trace` (the
curve's clock at the last optimizer step: the trace's evaluations left out,
the run's epoch-end evaluation and checkpoint still in, the end-of-training
evaluation and the test scoring not); `train_seconds_steps_only` (the sum of
the optimizer steps, on_step_begin to on_step_end: no evaluation, checkpoint
or logging).

Writes benchmarks/results/imdb_accuracy.json (and prints the figures).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def settings(args) -> dict:
    """The recipe of the run, as textlora config keys."""
    lora = {"r": args.r, "alpha": args.alpha, "dropout": 0.1, "target_modules": args.targets,
            "modules_to_save": ["pooler"]}
    return {
        "name": "imdb-accuracy", "seed": args.seed, "method": args.method, "baselines": ["tfidf"],
        "data": {"source": str(args.data), "label_names": ["negative", "positive"], "clean_html": True,
                 "validation_size": 1000, "n_eval": args.test_rows, "n_train": args.train_rows},
        "model": {"name": "packaged:minilm", "max_length": args.max_length, "truncation": args.truncation,
                  "head_tokens": args.head_tokens},
        "lora": lora,
        "train": {"epochs": 1, "learning_rate": args.lr, "batch_size": args.batch_size, "eval_batch_size": 128},
    }


class Clock:
    """Wall time with pauses: evaluation for the trace is not training time."""

    def __init__(self):
        self.start, self.paused_at, self.paused = None, None, 0.0

    def pause(self):
        self.paused_at = time.perf_counter()

    def resume(self):
        self.paused += time.perf_counter() - self.paused_at
        self.paused_at = None

    def elapsed(self) -> float:
        return (self.paused_at or time.perf_counter()) - self.start - self.paused


def accuracy_trace(encoded, labels, tokenizer, every: int):
    """A TrainerCallback: validation accuracy every `every` optimizer steps, training clock paused."""
    from transformers import TrainerCallback

    from textlora.evaluate import predict_probs

    class Trace(TrainerCallback):
        def __init__(self):
            self.points, self.clock, self.train_seconds = [], Clock(), None
            self.step_began, self.steps_seconds = None, 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.clock.start = time.perf_counter()

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_began = time.perf_counter()

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.steps_seconds += time.perf_counter() - self.step_began
            if state.global_step % every and state.global_step != state.max_steps:
                return
            self.clock.pause()
            probs = predict_probs(model, encoded, tokenizer, batch_size=128)
            accuracy = float((probs.argmax(1) == labels).mean())
            minutes = self.clock.elapsed() / 60
            self.points.append({"step": state.global_step, "epoch": round(state.epoch, 3),
                                "train_minutes": round(minutes, 2), "validation_accuracy": accuracy})
            print(f"  step {state.global_step:5d}  {minutes:5.1f} min  validation accuracy {accuracy:.4f}", flush=True)
            self.clock.resume()
            if state.global_step == state.max_steps:
                # Read at the last optimizer step: what follows (the run's evaluation and checkpoint, the
                # test scoring) is not training time.
                self.train_seconds = self.clock.elapsed()

    return Trace()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb")
    parser.add_argument("--budget-minutes", type=float, default=60)
    parser.add_argument("--method", default="lora")
    parser.add_argument("--targets", default="all-linear")
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--truncation", default="head_tail")
    parser.add_argument("--head-tokens", type=int, default=64)
    parser.add_argument("--trace-every", type=int, default=150, help="optimizer steps between accuracy points")
    parser.add_argument("--warmup-steps", type=int, default=30, help="timed steps used to size the schedule")
    parser.add_argument("--test-rows", type=int, default=None, help="score only this many test reviews (a dry run)")
    parser.add_argument("--train-rows", type=int, default=None, help="train on a sample of this many reviews (a dry run)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "imdb_accuracy.json")
    args = parser.parse_args()

    import json

    import transformers

    from textlora.config import config_from_dict
    from textlora.data import load_splits
    from textlora.encode import encode, to_dataset
    from textlora.models import build_model, load_tokenizer, resolve_model_source
    from textlora.pipeline import run_experiment
    from textlora.train import train_model

    transformers.logging.set_verbosity_error()
    raw = settings(args)
    cfg = config_from_dict(raw)
    splits = load_splits(cfg.data, cfg.seed)  # what the run will load: the same seed, the same rows
    source = resolve_model_source(cfg.model.name)
    tokenizer = load_tokenizer(source)

    # Warm-up: the same settings on other rows (the validation reviews), timed, to size the schedule.
    warm_rows = splits.validation.sample(min(len(splits.validation), args.warmup_steps * args.batch_size),
                                         random_state=1)
    model, _ = build_model(cfg, source, splits.label_names, tokenizer)
    warm_set = to_dataset(warm_rows["text"], warm_rows["label"], tokenizer, cfg.model)
    with tempfile.TemporaryDirectory() as work:
        warm = train_model(cfg, model, tokenizer, warm_set, warm_set.select(range(8)), splits.label_names,
                           Path(work), quiet=True)
    del model
    budget = args.budget_minutes * 60
    # 0.92: room for the per-epoch evaluations and the slower first steps.
    epochs = round(0.92 * budget * warm.samples_per_second / len(splits.train), 3)
    print(f"warm-up: {warm.samples_per_second:.2f} samples/s ({warm.precision}) -> {epochs} epoch(s) of "
          f"{len(splits.train)} reviews fit {args.budget_minutes:g} min", flush=True)

    raw["train"]["epochs"] = epochs
    trace = accuracy_trace(encode(tokenizer, list(splits.validation["text"]), cfg.model),
                           splits.validation["label"].to_numpy(), tokenizer, args.trace_every)
    with tempfile.TemporaryDirectory() as out:
        run = run_experiment(config_from_dict({**raw, "output_dir": out}), quiet=True, callbacks=(trace,))
        metrics = json.loads((run / "metrics.json").read_text())
    tfidf, final, timing = metrics["baselines"]["tfidf"], metrics["final"], metrics["timing"]
    print(f"\ntextlora MiniLM {final['accuracy']:.4f} vs TF-IDF + LR {tfidf['accuracy']:.4f} on {final['n']} test "
          f"reviews; trained {timing['train_seconds'] / 60:.1f} min ({trace.train_seconds / 60:.1f} without the "
          f"trace's evaluations)")

    keep = ("n", "accuracy", "f1", "roc_auc", "loss", "seconds")
    write_result(args.out, {
        "benchmark": "imdb_accuracy",
        "settings": raw,
        "budget_minutes": args.budget_minutes,
        "warmup_samples_per_second": warm.samples_per_second,
        "tfidf_logreg": {k: tfidf[k] for k in keep},
        "textlora": {**{k: final[k] for k in keep}, "train_seconds": timing["train_seconds"],
                     "train_seconds_without_trace": trace.train_seconds,
                     "train_seconds_steps_only": trace.steps_seconds,
                     "samples_per_second": timing["train_samples_per_second"], "precision": timing["precision"],
                     "trainable_parameters": metrics["params"]["trainable"]},
        "beats_tfidf": final["accuracy"] > tfidf["accuracy"],
        "curve": trace.points,
        "per_epoch": [{k: e.get(k) for k in ("epoch", "train_loss", "loss", "accuracy", "seconds")}
                      for e in metrics["epochs"]],
    })


if __name__ == "__main__":
    main()
