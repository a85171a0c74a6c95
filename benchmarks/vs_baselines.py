"""The benchmark that decides: textlora against TF-IDF, NBSVM and SetFit on four datasets, side by side.

    pip install -e '.[bench]'      # SetFit (leaves torch and transformers as they are)
    python benchmarks/vs_baselines.py                         # the real run, on a quiet machine
    python benchmarks/vs_baselines.py --datasets demo --budget-minutes 1 --test-rows 60 --out /tmp/vs.json  # dry run

Time on 2 CPU cores: two training budgets per dataset (textlora, SetFit) plus scoring. IMDB is
the long one: three passes over its 25,000 test reviews (the untrained model, the run's own,
SetFit's) at several minutes each. --datasets runs a subset (into its own --out).

Data: IMDB trains on 3,000 reviews of its train split (the 300 validation rows are carved from the
rest) and is tested on all 25,000; AG News on its 5,000 (500 of them carved off for validation),
tested on 7,600; DrugLib 3,107 / 1,036 and the drugs.com demo 600 / 379 likewise. Exact duplicates
of training texts are dropped from validation and test (data.dedupe: across), so n can be a little
smaller. --test-rows and --train-rows shrink everything for a dry run.

Per dataset, one after the other (never in parallel):
1. one `textlora train` run (textlora.pipeline.run_experiment) with the settings of the dataset's
   recipe in recipes/ and train.budget_minutes = --budget-minutes. Its run record gives the rows
   TF-IDF + LR, NBSVM, pre-adaptation, fine-tuned (calibrated), ensemble and shipped, each with
   its 95 % paired-bootstrap intervals on the test rows. Validation rows are carved from the
   training split by the pipeline; the test split chooses nothing.
2. the probabilities needed for paired tests: the run folder keeps every row's test
   probabilities (test_probs.safetensors), so nothing is scored twice; the test rows SetFit sees
   come from textlora.data.load_splits with the run's settings and seed (checked against the
   run's data fingerprint and labels).
3. SetFit (setfit 1.2, the `bench` extra) on the same training rows (not the validation rows:
   SetFit with its defaults selects nothing), starting from the same packaged all-MiniLM-L6-v2
   (a complete sentence-transformers folder), with its documented defaults (CosineSimilarityLoss
   on oversampled pairs, batch 16, body learning rate 2e-5, warm-up 10 %, logistic-regression
   head, the model's own 256-token limit) except for the number of contrastive steps: one epoch
   of all oversampled pairs would be 10^4 (the demo) to 3 x 10^5 (IMDB) steps, so `max_steps` is set to fit the same budget as
   textlora: a timed probe of a few steps on a throwaway copy (the first step not counted) gives
   the step time, a timed encoding of a sample of the training texts gives the head's fitting time,
   and max_steps = (0.92 x budget - head time) / step time (0.92: textlora.budget.SAFETY). The
   probe, like textlora's, is outside the budget; the training actually measured is recorded.
4. every row against the best classical row on the validation rows (the bar: the one of TF-IDF
   and NBSVM the run's selection metric prefers on validation, as the pipeline chooses it), with
   textlora.stats.compare on the test rows: McNemar's exact p for accuracy, the paired-bootstrap p
   for macro F1; ECE with a bootstrap interval on the same resampled rows.

Goals are checked and printed, never asserted: the shipped model beats the bar and SetFit on the
headline metric (accuracy; macro F1 for DrugLib and the drugs.com demo), significantly (p < 0.05)
or not; the shipped model's ECE is <= 0.03 on IMDB and AG News.

Writes benchmarks/results/vs_baselines.json (--out) and prints the markdown table for the README.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

# Every model and dataset here is local (packaged or under --shared-data): never reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
ALPHA = 0.05
ECE_GOAL = 0.03

# Per dataset: the recipe in recipes/ it starts from, its folder under --shared-data (None: a packaged
# source), the headline metric of its goals, whether the ECE goal applies, and data / model keys that
# replace the recipe's.
DATASETS: dict[str, dict[str, Any]] = {
    "imdb": {"title": "IMDB", "recipe": "imdb-minilm.yaml", "folder": "imdb", "headline": "accuracy",
             "ece_goal": True, "data": {"n_train": 3000}, "model": {}},
    # AG News has no recipe of its own: imdb-minilm's settings (clean_html included: harmless here)
    # with 128 tokens (title + description is short), its four topics, and every training row.
    "ag_news": {"title": "AG News", "recipe": "imdb-minilm.yaml", "folder": "ag_news", "headline": "accuracy",
                "ece_goal": True, "data": {"n_train": None, "label_names": ["World", "Sports", "Business", "Sci/Tech"]},
                "model": {"max_length": 128}},
    "druglib": {"title": "DrugLib", "recipe": "druglib-minilm.yaml", "folder": "druglib", "headline": "f1_macro",
                "ece_goal": False, "data": {}, "model": {}},
    "demo": {"title": "drugs.com demo", "recipe": "demo-drugscom-minilm.yaml", "folder": None, "headline": "f1_macro",
             "ece_goal": False, "data": {}, "model": {}},
}
ROW_ORDER = ("tfidf", "nbsvm", "pre_adaptation", "finetuned", "ensemble", "shipped", "setfit")
METRIC_NAMES = {"accuracy": "accuracy", "f1_macro": "macro F1"}

Say = Callable[[str], None]


def settings(key: str, args) -> dict[str, Any]:
    """The run's config keys: the dataset's recipe, its data, the budget, the seed."""
    from textlora.config import read_recipe

    spec = DATASETS[key]
    raw = read_recipe(RECIPES / spec["recipe"])
    raw["name"] = f"vs-baselines-{key}"
    raw["seed"] = args.seed
    data = {**raw.get("data", {}), **spec["data"], "n_eval": args.test_rows}
    if args.train_rows is not None:  # a dry run: the validation rows carved from train shrink with it
        data["n_train"] = min(args.train_rows, data.get("n_train") or args.train_rows)
    if spec["folder"] is not None:
        data["source"] = str(args.shared_data / spec["folder"])
    raw["data"] = data
    raw["model"] = {**raw.get("model", {}), **spec["model"]}
    # budget_minutes replaces epochs: the pipeline measures its step time and sets max_steps.
    raw["train"] = {**raw.get("train", {}), "budget_minutes": args.budget_minutes}
    return raw


# --------------------------------------------------------------------------- probabilities


def saved_probs(run_dir: Path, record) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every row's test probabilities as the run scored them (test_probs.safetensors), with the
    shipped row's: no second pass over the test rows."""
    from textlora.runs import open_run

    probs = open_run(run_dir).test_probs()
    labels = probs.pop("labels")
    probs["shipped"] = probs[record.shipped_kind]
    return probs, labels


def _close(a, b, tolerance: float = 1e-9) -> bool:
    return a is None and b is None or (a is not None and b is not None and abs(a - b) <= tolerance)


# --------------------------------------------------------------------------- SetFit


def setfit_skip_reason(args) -> str | None:
    if args.no_setfit:
        return "--no-setfit"
    try:
        import setfit  # noqa: F401
    except ImportError as err:
        return f"setfit is not installed ({err}); pip install -e '.[bench]'"
    return None


def run_setfit(splits, budget_minutes: float, seed: int, probe_steps: int, say: Say) -> tuple[np.ndarray, dict]:
    """SetFit with its defaults on the training rows, max_steps sized to the budget; test probabilities."""
    import setfit
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from transformers import TrainerCallback

    from textlora.budget import SAFETY
    from textlora.models import resolve_model_source

    setfit.logging.set_verbosity_warning()  # setfit's sampler turns info logging on when imported
    source = resolve_model_source("packaged:minilm")
    texts, labels = list(splits.train["text"]), [int(y) for y in splits.train["label"]]
    train_set = Dataset.from_dict({"text": texts, "label": labels})

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.began, self.times, self.train_began, self.train_seconds = 0.0, [], 0.0, None

        def on_train_begin(self, args, state, control, **kwargs):
            self.train_began = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            self.train_seconds = time.perf_counter() - self.train_began

        def on_step_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.began)

    def trainer(max_steps: int, work: str, timer: StepTimer) -> Trainer:
        model = SetFitModel.from_pretrained(source)
        # Only the step count, the seed and bookkeeping differ from SetFit's defaults: no checkpoints
        # (nothing resumes), no experiment trackers, no progress bars in a benchmark log.
        arguments = TrainingArguments(output_dir=work, max_steps=max_steps, seed=seed, save_strategy="no",
                                      report_to="none", show_progress_bar=False)
        return Trainer(model=model, args=arguments, train_dataset=train_set, callbacks=[timer])

    with tempfile.TemporaryDirectory() as work:
        # Probe: a throwaway copy. The head's fitting time is the encoding of every training text
        # (sentence-transformers sorts by length, so a random sample's time scales) plus a
        # logistic regression that takes well under a second here.
        say(f"SetFit: timing {probe_steps} contrastive steps and the head's encoding ...")
        probe = SetFitModel.from_pretrained(source)
        sample = [texts[i] for i in np.random.default_rng(seed).choice(len(texts), min(64, len(texts)), replace=False)]
        begun = time.perf_counter()
        probe.encode(sample, batch_size=32)
        head_seconds = (time.perf_counter() - begun) * len(texts) / len(sample)
        del probe
        timer = StepTimer()
        trainer(probe_steps, work, timer).train_embeddings(texts, labels)  # the contrastive phase only
        counted = timer.times[1:] or timer.times
        step_seconds = float(np.median(counted))
        available = SAFETY * budget_minutes * 60 - head_seconds
        max_steps = max(1, math.floor(available / step_seconds))
        fits = available >= step_seconds
        say(f"SetFit: a step of 16 pairs takes {step_seconds:.2f} s, the head ~{head_seconds:.0f} s -> {max_steps} "
            f"steps ({max_steps * 16} pairs) fit {budget_minutes:g} min" + ("" if fits else
            " (NOT: the budget is smaller than one step and the head; one step is run anyway)"))

        timer = StepTimer()
        final = trainer(max_steps, work, timer)
        begun = time.perf_counter()
        final.train()  # the contrastive phase, then the logistic-regression head
        model = final.model
        train_seconds = time.perf_counter() - begun
    say(f"SetFit: trained in {train_seconds / 60:.1f} min (contrastive {timer.train_seconds:.0f} s); "
        f"scoring {len(splits.test)} test rows ...")
    begun = time.perf_counter()
    probs = np.asarray(model.predict_proba(list(splits.test["text"]), batch_size=64, as_numpy=True), dtype=np.float64)
    # SetFit returns float32: rows sum to 1 only to ~1e-7, which sklearn's ROC-AUC warns about.
    probs /= probs.sum(axis=1, keepdims=True)
    if probs.shape != (len(splits.test), len(splits.label_names)):
        raise RuntimeError(f"SetFit gave probabilities of shape {probs.shape}; expected one column per class")
    import importlib.metadata as md

    info = {
        "model": "packaged:minilm", "training_rows": len(texts), "max_length": model.model_body.max_seq_length,
        "probe_steps": probe_steps, "probe_step_seconds": step_seconds, "head_seconds_estimate": head_seconds,
        "max_steps": max_steps, "pairs": max_steps * 16, "fits_budget": fits, "budget_minutes": budget_minutes,
        "train_seconds": train_seconds, "contrastive_seconds": timer.train_seconds,
        "within_budget": train_seconds <= budget_minutes * 60,
        "test_seconds": time.perf_counter() - begun,
        "settings": "setfit defaults (CosineSimilarityLoss, oversampling, batch 16, body lr 2e-5, warmup 0.1, "
                    "LogisticRegression head) with max_steps sized to the budget",
        "versions": {name: md.version(name) for name in ("setfit", "sentence-transformers")},
    }
    return probs, info


# --------------------------------------------------------------------------- one dataset


def ece_interval(labels: np.ndarray, probs: np.ndarray, seed: int) -> list[float]:
    """95 % percentile interval of ECE on the resampled rows every other interval here uses."""
    from textlora.calibration import expected_calibration_error
    from textlora.stats import resample_indices

    values = [expected_calibration_error(labels[rows], probs[rows]) for rows in resample_indices(len(labels), 1000, seed)]
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def row_summary(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "accuracy", "f1_macro", "roc_auc", "ece", "brier", "intervals", "seconds", "train_seconds",
            "partner", "weight")
    return {k: row[k] for k in keep if k in row}


def benchmark_dataset(key: str, args, runs_dir: Path, say: Say) -> dict[str, Any]:
    from textlora.config import config_from_dict
    from textlora.data import fingerprint, load_splits
    from textlora.pipeline import run_experiment, scored_row
    from textlora.runs import CLASSICAL_ROWS, open_run, row_name
    from textlora.ship import max_by
    from textlora.stats import bootstrap_intervals, compare

    spec = DATASETS[key]
    started = time.perf_counter()
    raw = settings(key, args)
    cfg = config_from_dict({**raw, "output_dir": str(runs_dir)})
    say(f"textlora: {spec['recipe']} with a {args.budget_minutes:g}-minute training budget ...")
    run_dir = run_experiment(cfg, overwrite=True, quiet=True, say=lambda line: say("  " + line))
    record = open_run(run_dir).record()

    splits = load_splits(cfg.data, cfg.seed)  # the run's rows (for SetFit): same settings, same seed
    same_rows = fingerprint(splits) == record.data.get("fingerprint")
    if not same_rows:
        say("WARNING: load_splits gave other rows than the run used (data fingerprints differ)")
    probs, labels = saved_probs(run_dir, record)
    checks = {"same_rows": same_rows, "same_labels": bool(np.array_equal(labels, splits.test["label"].to_numpy()))}

    setfit_info: dict[str, Any]
    skip = setfit_skip_reason(args)
    if skip is None:
        probs["setfit"], setfit_info = run_setfit(splits, args.budget_minutes, cfg.seed, args.setfit_probe_steps, say)
    else:
        setfit_info = {"skipped": skip}

    metric = record.selection["metric"]
    classical_val = {k: v for k, v in record.selection["validation_scores"].items() if k in CLASSICAL_ROWS}
    bar = max_by(metric, classical_val)
    names = {k: row_name(k, record.objective) for k in ROW_ORDER}
    names.update(finetuned=f"Fine-tuned ({record.method})", shipped=f"Shipped ({record.shipped_kind})",
                 setfit="SetFit")

    rows: dict[str, dict[str, Any]] = {k: row_summary(v) for k, v in record.baselines.items()}
    rows["finetuned"] = row_summary(record.final)
    if record.ensemble:
        rows["ensemble"] = row_summary(record.ensemble)
    rows["shipped"] = {**row_summary(record.shipped_row), "kind": record.shipped_kind}
    if "setfit" in probs:
        intervals = bootstrap_intervals(labels, {"setfit": probs["setfit"]}, seed=cfg.seed)["setfit"]
        rows["setfit"] = {**row_summary(scored_row(labels, probs["setfit"], splits.label_names)),
                          "intervals": {m: list(v) if v is not None else None for m, v in intervals.items()}}
    comparisons = {}
    for k, row in rows.items():
        row["ece_interval"] = ece_interval(labels, probs[k], cfg.seed) if k in probs else None
        if k in probs and k != bar:
            c = compare(labels, probs[k], probs[bar], names[k], names[bar], seed=cfg.seed)
            comparisons[k] = {**c.as_dict(), "verdict": c.verdict}
        row["p_accuracy_mcnemar"] = comparisons[k]["mcnemar_p"] if k in comparisons else None
        row["p_f1_macro_bootstrap"] = comparisons[k]["f1_macro_p"] if k in comparisons else None

    goals = check_goals(key, rows, probs, labels, bar, comparisons, names, cfg.seed)
    for line in goals["lines"]:
        say(line)
    return {
        "title": spec["title"], "recipe": spec["recipe"], "settings": raw, "run_name": record.name,
        "rows_used": {split: info["rows"] for split, info in record.data["splits"].items()},
        "class_counts": {split: info["class_counts"] for split, info in record.data["splits"].items()},
        "data_notes": record.data.get("notes", []),
        "select_metric": metric, "headline_metric": spec["headline"],
        "bar": bar, "bar_name": names[bar], "classical_validation_scores": classical_val,
        "validation_scores": record.selection["validation_scores"],
        "shipped": {"kind": record.shipped_kind, "reason": record.shipped.get("reason")},
        "row_names": {k: names[k] for k in rows},
        "rows": rows,
        "comparisons_vs_bar": comparisons,
        "run_comparisons": record.comparisons,
        "calibration": {k: v for k, v in (record.calibration or {}).items() if not k.startswith("reliability")},
        "goals": {k: v for k, v in goals.items() if k != "lines"},
        "checks": checks,
        "setfit": setfit_info,
        "textlora_timing": record.timing,
        "budget_plan": record.selection.get("budget"),
        "trainable_parameters": record.params.get("trainable"),
        "seconds": time.perf_counter() - started,
    }


def check_goals(key: str, rows, probs, labels, bar: str, comparisons, names, seed: int) -> dict[str, Any]:
    """Does what ships beat the bar and SetFit on the headline metric, significantly? Is it calibrated?"""
    from textlora.stats import compare

    spec = DATASETS[key]
    metric = spec["headline"]
    p_key = "mcnemar_p" if metric == "accuracy" else "f1_macro_p"
    diff_key = f"{metric}_diff"
    out: dict[str, Any] = {"headline_metric": metric, "lines": []}
    shown = METRIC_NAMES[metric]

    def against(other: str, comparison: dict[str, Any]) -> dict[str, Any]:
        # When the bar itself ships, the comparison is of identical rows: +0.0 pt, p = 1.
        diff, p = comparison[diff_key], comparison[p_key]
        return {"against": other, "diff": diff, "p": p, "beats": diff > 0,
                "significantly": diff > 0 and p is not None and p < ALPHA,
                "bar_ships": other == bar and rows["shipped"].get("kind") == bar}

    def line(result: dict[str, Any]) -> str:
        verdict = "beats" if result["beats"] else "does not beat"
        if result["beats"]:
            verdict += " significantly" if result["significantly"] else " (not significantly)"
        p = result["p"]
        return (f"goal: shipped {verdict} {names[result['against']]} on {shown}: "
                f"{result['diff'] * 100:+.1f} pt, p = {'-' if p is None else f'{p:.2g}'}")

    out["vs_bar"] = against(bar, comparisons["shipped"])
    out["lines"].append(line(out["vs_bar"]))
    if "setfit" in probs:
        c = compare(labels, probs["shipped"], probs["setfit"], names["shipped"], "SetFit", seed=seed)
        out["vs_setfit"] = {**against("setfit", c.as_dict()), "verdict": c.verdict}
        out["lines"].append(line(out["vs_setfit"]))
    else:
        out["vs_setfit"] = None
        out["lines"].append("goal: shipped vs SetFit: not measured (SetFit skipped)")
    if spec["ece_goal"]:
        ece = rows["shipped"]["ece"]
        out["ece"] = {"value": ece, "goal": ECE_GOAL, "met": ece <= ECE_GOAL, "interval": rows["shipped"]["ece_interval"]}
        out["lines"].append(f"goal: shipped ECE {ece:.4f} {'<=' if ece <= ECE_GOAL else '>'} {ECE_GOAL}: "
                            f"{'met' if ece <= ECE_GOAL else 'NOT met'}")
    return out


# --------------------------------------------------------------------------- tables


def _figure(value, interval, digits: int = 3) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    if interval:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text


def _p(p) -> str:
    return "–" if p is None else ("< 0.001" if p < 0.001 else f"{p:.2g}")


def markdown(results: dict[str, dict[str, Any]]) -> str:
    out = []
    for key, result in results.items():
        n = result["rows_used"]
        out.append(f"**{result['title']}**: {n['train']:,} training / {n['validation']:,} validation / "
                   f"{n['test']:,} test rows; bar = {result['bar_name']} (best classical row on validation "
                   f"{METRIC_NAMES.get(result['select_metric'], result['select_metric'])}); "
                   f"shipped = {result['shipped']['kind']}")
        out.append("")
        out.append("| row | accuracy [95 % CI] | macro F1 [95 % CI] | ROC-AUC [95 % CI] | ECE [95 % CI] "
                   "| p accuracy (McNemar) | p macro F1 (bootstrap) |")
        out.append("|---|---|---|---|---|---|---|")
        for k in ROW_ORDER:
            if k == "setfit" and "skipped" in result["setfit"]:
                out.append(f"| SetFit | skipped: {result['setfit']['skipped']} | | | | | |")
                continue
            if k not in result["rows"]:
                continue
            row, intervals = result["rows"][k], result["rows"][k].get("intervals", {})
            name = result["row_names"][k] + (" (bar)" if k == result["bar"] else "")
            p_acc, p_f1 = ("bar", "bar") if k == result["bar"] else \
                (_p(row["p_accuracy_mcnemar"]), _p(row["p_f1_macro_bootstrap"]))
            out.append(f"| {name} | {_figure(row['accuracy'], intervals.get('accuracy'))} "
                       f"| {_figure(row['f1_macro'], intervals.get('f1_macro'))} "
                       f"| {_figure(row.get('roc_auc'), intervals.get('roc_auc'))} "
                       f"| {_figure(row['ece'], row.get('ece_interval'))} | {p_acc} | {p_f1} |")
        out.append("")
    out.append("| dataset | headline | shipped beats the bar | shipped beats SetFit | shipped ECE <= 0.03 |")
    out.append("|---|---|---|---|---|")
    for key, result in results.items():
        goals = result["goals"]

        def cell(g):
            if g is None:
                return "SetFit skipped"
            if g.get("bar_ships"):
                return "no: the bar itself ships"
            mark = ("yes, significantly" if g["significantly"] else "yes, not significantly") if g["beats"] else "no"
            return f"{mark} ({g['diff'] * 100:+.1f} pt, p {_p(g['p'])})"

        ece = goals.get("ece")
        ece_cell = "–" if ece is None else f"{'yes' if ece['met'] else 'no'} ({ece['value']:.3f})"
        out.append(f"| {result['title']} | {METRIC_NAMES[goals['headline_metric']]} | {cell(goals['vs_bar'])} "
                   f"| {cell(goals['vs_setfit'])} | {ece_cell} |")
    out.append("")
    out.append("Intervals: 95 % paired bootstrap over the test rows (1,000 resamples, the same rows for every model). "
               "p: each row against the bar, the classical row that scores best on the validation rows; McNemar's "
               "exact test for accuracy, the paired bootstrap for macro F1. Goals: the shipped model against the bar "
               "and SetFit on the headline metric (pt = percentage points; significant at p < 0.05).")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS),
                        help="a subset, run in this order")
    parser.add_argument("--shared-data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="folder holding imdb/, ag_news/ and druglib/ (train / test parquet)")
    parser.add_argument("--budget-minutes", type=float, default=15,
                        help="training budget of textlora and of SetFit, each, per dataset")
    parser.add_argument("--test-rows", type=int, default=None, help="score only this many test rows (a dry run)")
    parser.add_argument("--train-rows", type=int, default=None,
                        help="train on at most this many rows (a dry run; the validation rows shrink with it)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-setfit", action="store_true", help="leave SetFit out (recorded as skipped)")
    parser.add_argument("--setfit-probe-steps", type=int, default=4,
                        help="timed SetFit steps that size its schedule (the first is not counted)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="keep the run folders here (default: a temporary folder, removed)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "vs_baselines.json")
    args = parser.parse_args()

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()  # also turns the Trainer's progress bars off
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message=".*pin_memory.*")  # SetFit's data loader on a CPU
    if args.setfit_probe_steps < 2:
        parser.error("--setfit-probe-steps must be at least 2 (the first step is not counted)")

    from textlora.errors import TextloraError

    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = args.runs_dir or Path(scratch)
        for key in args.datasets:
            def say(line: str, key=key) -> None:
                print(f"[{key}] {line}", flush=True)

            say(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
            try:
                results[key] = benchmark_dataset(key, args, runs_dir, say)
            except TextloraError as err:  # a user-fixable problem (data path, too small a budget): say it, go on
                say(f"FAILED: {err}")
                failed[key] = str(err)
                continue
            say(f"done in {results[key]['seconds'] / 60:.1f} min")

    table = markdown(results) + "".join(f"\n\n{DATASETS[k]['title']}: failed: {e}" for k, e in failed.items())
    print("\n" + table + "\n", flush=True)
    skip = setfit_skip_reason(args)
    write_result(args.out, {
        "benchmark": "vs_baselines",
        "budget_minutes": args.budget_minutes,
        "test_rows": args.test_rows,
        "train_rows": args.train_rows,
        "seed": args.seed,
        "setfit": {"skipped": skip} if skip else {"installed": True},
        "datasets": results,
        "failed": failed,
        "goals": {key: r["goals"] for key, r in results.items()},
        "table_markdown": table,
    })
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
