"""One recipe, several seeds, the two orders of length-grouped batches: does the order change what a run learns?

    python benchmarks/batch_order.py recipes/demo-drugscom-minilm.yaml --seeds 42 43 44 45 46 --runs-dir /tmp/order-runs

textlora groups training texts of similar length into batches (train.group_by_length) and, since
2026-12-05, serves those batches in a seeded random order (textlora.train.ShuffledLengthGroupedSampler);
before, it served them in transformers' order, each mega-batch of 50 batches from the longest texts to
the shortest. Both orders hold the same batches. Per seed, the recipe runs once in each order
(`shuffled`, `sorted`; the order of the two alternates by seed), everything else equal: the same
seed, so the same split, initialisation and dropout draws.

Recorded per run, from its run record: the validation score of the checkpoint it chose (what the run
itself sees), the fine-tuned model's test accuracy and macro F1, and what ships with its test
figures. Per order: mean +- sd over seeds; per metric, the paired differences (shuffled - sorted, seed
by seed) with a paired t-test and Wilcoxon's signed-rank test. Nothing is chosen on these rows.

Writes benchmarks/results/batch_order.json (--out), after every run; --resume keeps the runs it holds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import paired_seed_differences, write_result  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ORDERS = ("shuffled", "sorted")
METRICS = ("validation_selected", "finetuned_accuracy", "finetuned_f1_macro", "shipped_accuracy", "shipped_f1_macro")


def one_run(recipe: Path, overrides: list[str], seed: int, order: str, runs_dir: Path) -> dict:
    from textlora.config import load_config
    from textlora.pipeline import run_experiment
    from textlora.train import ShuffledLengthGroupedSampler

    cfg = load_config(recipe, [*overrides, f"seed={seed}", f"name=order-{order}-{seed}", f"output_dir={runs_dir}"])
    ShuffledLengthGroupedSampler.shuffle_batches = order == "shuffled"
    started = time.perf_counter()
    try:
        run = run_experiment(cfg, overwrite=True, quiet=True, say=lambda *_: None)
    finally:
        ShuffledLengthGroupedSampler.shuffle_batches = True
    record = json.loads((run / "metrics.json").read_text())
    selection, shipped = record["selection"], record["shipped"]
    return {
        "seed": seed, "order": order, "run": str(run), "select_metric": selection["metric"],
        "selected_step": selection["step"], "steps": record["timing"]["steps"],
        "validation_selected": selection["validation_scores"]["finetuned"],
        "finetuned_accuracy": record["final"]["accuracy"], "finetuned_f1_macro": record["final"]["f1_macro"],
        "shipped": shipped["kind"], "shipped_accuracy": shipped["row"]["accuracy"],
        "shipped_f1_macro": shipped["row"]["f1_macro"], "test_rows": record["final"]["n"],
        "seconds": time.perf_counter() - started, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def summarise(runs: list[dict]) -> dict:
    out: dict = {"by_order": {}, "shuffled_minus_sorted": {}}
    for order in ORDERS:
        mine = [r for r in runs if r["order"] == order]
        out["by_order"][order] = {
            "seeds": sorted(r["seed"] for r in mine), "shipped": [r["shipped"] for r in mine],
            **{m: {"mean": float(np.mean([r[m] for r in mine])), "sd": float(np.std([r[m] for r in mine], ddof=1))
                   if len(mine) > 1 else None} for m in METRICS if mine}}
    by_seed = {(r["seed"], r["order"]): r for r in runs}
    seeds = sorted({s for s, o in by_seed if (s, "shuffled") in by_seed and (s, "sorted") in by_seed})
    for metric in METRICS:
        paired = paired_seed_differences(
            {s: 100 * (by_seed[s, "shuffled"][metric] - by_seed[s, "sorted"][metric]) for s in seeds})
        if paired:
            out["shuffled_minus_sorted"][metric] = paired
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe overrides, as textlora train --set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/order-runs"))
    parser.add_argument("--resume", action="store_true", help="keep the runs --out already holds and skip them")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "batch_order.json")
    args = parser.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()
    runs: list[dict] = []
    if args.resume and args.out.is_file():
        runs = json.loads(args.out.read_text())["runs"]
    done = {(r["seed"], r["order"]) for r in runs}

    def save(complete: bool) -> None:
        write_result(args.out, {"benchmark": "batch_order", "complete": complete, "recipe": str(args.recipe),
                                "overrides": args.overrides, "seeds": args.seeds, "summary": summarise(runs),
                                "runs": runs})

    for index, seed in enumerate(args.seeds):
        for order in (ORDERS if index % 2 == 0 else ORDERS[::-1]):
            if (seed, order) in done:
                continue
            row = one_run(args.recipe, args.overrides, seed, order, args.runs_dir)
            runs.append(row)
            print(f"seed {seed} {order:8s} validation {row['validation_selected']:.4f} (step {row['selected_step']}) "
                  f"fine-tuned acc {row['finetuned_accuracy']:.3f} F1m {row['finetuned_f1_macro']:.3f}; "
                  f"ships {row['shipped']} acc {row['shipped_accuracy']:.3f}", flush=True)
            save(complete=False)
    save(complete=True)
    for metric, row in summarise(runs)["shuffled_minus_sorted"].items():
        print(f"{metric:22s} shuffled - sorted {row['mean']:+.2f} +- {row['sd']:.2f} pt "
              f"(p = {row.get('paired_t_p', float('nan')):.3f} paired t, {row.get('wilcoxon_p', float('nan')):.3f} Wilcoxon)")


if __name__ == "__main__":
    main()
