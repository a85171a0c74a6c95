"""The rating as a number (task: regression) against the classes made from it (task: classification).

    python benchmarks/rating_vs_classes.py                              # DrugLib and IMDB, the real run
    python benchmarks/rating_vs_classes.py --quick                      # tiny sizes: checks the script (numbers mean nothing)
    python benchmarks/rating_vs_classes.py --datasets imdb --reuse      # IMDB only; finished runs are not trained again

Per dataset, two `textlora train` runs (textlora.pipeline.run_experiment, recipes loaded with
textlora.config.load_config and `--set`-style overrides), one after the other, into --runs-dir:
- the regression recipe (recipes/druglib-rating-minilm.yaml, recipes/imdb-rating-minilm.yaml):
  MiniLM + LoRA predicting the 1-10 rating, against TF-IDF + ridge and the training mean;
- the classifier recipe on the same data (recipes/druglib-minilm.yaml: negative / neutral / positive
  from the rating with the same bins; recipes/imdb-minilm.yaml: the published negative / positive label).

Data: --shared-data/druglib (the original 3,107 / 1,036 split; validation rows carved from train)
and --shared-data/imdb (2,000 training / 1,000 test reviews, as both IMDB recipes sample them).

The same rows on both sides. The regression run cannot stratify its samples on a float target, so it
draws them at random (seeded), while the classifier recipes stratify on their class: as the recipes
stand, the two runs would train, choose and test on different rows (IMDB: a different 1,000-review
test sample; DrugLib: different validation rows carved from train, hence different training rows and
a different set of test rows dropped as repeats of a training text, 1,020 against 1,021). So the
classifier runs with one change to its recipe, `data.stratify=false`: its seeded draws are then the
regression run's, row for row. Nothing else differs from the recipes. Before training, the script
loads both runs' rows (textlora.data.load_splits) and asserts that train, validation and test hold the
same texts in the same order; after training, that each run's data fingerprint is the one of those
rows, and that the binned regression target (the regression run's label_bins) equals the classifier's
test label on every test row. It also records whether the classifier recipe as it stands would have
had the same test rows.

Reported per dataset:
1. the regression run's rows on the test split (fine-tuned, TF-IDF + ridge, training mean, ensemble
   when there is one): MAE, RMSE, R², Spearman and Pearson with their 95 % paired-bootstrap intervals,
   as the run record holds them, and the run's verdict lines;
2. binning against classifying, on the same test rows: the regression's predicted rating put in the
   bin of label_bins it falls in (textlora.regression.value_bins: the nearest bin when between two)
   against the classifier's predicted class, for the fine-tuned models, for what each run ships, and
   for the classical rows (TF-IDF + ridge binned against TF-IDF + logistic regression): accuracy and
   macro F1 with 95 % bootstrap intervals, the paired differences (regression binned - classifier)
   with their 95 % paired-bootstrap intervals (textlora.stats.paired_bootstrap; 1,000 resamples, the
   same resampled rows for every figure), McNemar's exact test on the rows each gets right
   (textlora.stats.mcnemar_exact) and the paired-bootstrap p for macro F1; per-class F1 and the
   confusion matrices.

Time: four trainings on the CPU, one after the other (about 10-25 minutes each on 2 shared cores).
The timings recorded are those of a machine shared with other work (see `note` in the JSON); the
accuracy figures do not depend on it.

Writes benchmarks/results/rating_vs_classes.json (--out; --quick writes /tmp/rating_vs_classes-quick.json
unless --out is given) and prints the markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
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
N_RESAMPLES = 1000

DATASETS: dict[str, dict[str, Any]] = {
    "druglib": {"title": "DrugLib", "folder": "druglib", "regression": "druglib-rating-minilm.yaml",
                "classifier": "druglib-minilm.yaml", "sets": []},
    # Both IMDB recipes already say 2,000 / 1,000; set here too so the benchmark does not move if they do.
    "imdb": {"title": "IMDB", "folder": "imdb", "regression": "imdb-rating-minilm.yaml",
             "classifier": "imdb-minilm.yaml", "sets": ["data.n_train=2000", "data.n_eval=1000"]},
}
SAME_ROWS = ["data.stratify=false"]
"""The one change to the classifier recipes: its seeded samples become the regression run's (module doc)."""
KINDS = ("regression", "classifier")
REGRESSION_ROWS = ("finetuned", "tfidf", "pre_adaptation", "ensemble")
REGRESSION_METRICS = ("mae", "rmse", "r2", "spearman", "pearson")
# (name, regression run's row, classifier run's row): "shipped" is whatever each run ships.
PAIRS = (("fine-tuned", "finetuned", "finetuned"), ("shipped", "shipped", "shipped"),
         ("classical (TF-IDF + ridge binned vs TF-IDF + LR)", "tfidf", "tfidf"))
NOTE = ("Timings (timing.*, seconds) were measured on 2 CPU cores shared with other engineers' work running at the "
        "same time (see machine.load_average_1_5_15_min and load_average_end): they are slower and noisier than on "
        "a quiet machine. Accuracy, macro F1, MAE and the other quality figures do not depend on it.")

Say = Callable[[str], None]


# --------------------------------------------------------------------------- configs and rows


def overrides(key: str, kind: str, args) -> list[str]:
    """The `--set` overrides of one run: --quick's sizes first (as `textlora train --quick`), then the
    data folder, the dataset's sizes, the run's name and folder, and for the classifier SAME_ROWS."""
    from textlora.quick import quick_overrides

    spec = DATASETS[key]
    recipe = RECIPES / spec[kind]
    out = quick_overrides(str(recipe)) if args.quick else []
    out += [f"data.source={args.shared_data / spec['folder']}", *([] if args.quick else spec["sets"]),
            f"name={run_name(key, kind, args)}", f"output_dir={args.runs_dir}"]
    if kind == "classifier":
        out += SAME_ROWS
    return out


def run_name(key: str, kind: str, args) -> str:
    return f"rating-vs-classes-{key}-{kind}" + ("-quick" if args.quick else "")


def load(key: str, kind: str, args):
    from textlora.config import load_config

    return load_config(RECIPES / DATASETS[key][kind], overrides(key, kind, args))


def check_same_rows(key: str, cfgs: dict[str, Any], args, say: Say) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both runs' rows before training (load_splits, as the pipeline reads them): the same texts in the
    same order in every split, asserted. Returns (checks, splits by kind)."""
    from textlora.config import load_config
    from textlora.data import load_splits

    splits = {kind: load_splits(cfg.data, cfg.seed, cfg.task) for kind, cfg in cfgs.items()}
    checks: dict[str, Any] = {}
    for split in ("train", "validation", "test"):
        a, b = (list(getattr(splits[kind], split)["text"]) for kind in KINDS)
        checks[f"same_{split}_texts_in_order"] = a == b
        checks[f"{split}_rows"] = [len(a), len(b)]
    say("rows (regression / classifier): " + ", ".join(f"{s} {checks[f'{s}_rows'][0]} / {checks[f'{s}_rows'][1]}"
                                                       for s in ("train", "validation", "test")))
    assert all(checks[f"same_{s}_texts_in_order"] for s in ("train", "validation", "test")), \
        f"{key}: the regression and classifier runs would not use the same rows: {checks}"
    # What the classifier recipe as it stands (stratified samples) would have tested on.
    as_is = load_config(RECIPES / DATASETS[key]["classifier"],
                        [o for o in overrides(key, "classifier", args) if o not in SAME_ROWS])
    as_is_test = list(load_splits(as_is.data, as_is.seed, as_is.task).test["text"])
    checks["classifier_recipe_as_is_same_test_rows"] = as_is_test == list(splits["regression"].test["text"])
    checks["classifier_recipe_as_is_test_rows"] = len(as_is_test)
    say(f"the classifier recipe as it stands would test on {'the same' if checks['classifier_recipe_as_is_same_test_rows'] else 'other'} "
        f"rows ({len(as_is_test)}); with {' '.join(SAME_ROWS)} it tests on the regression run's {len(splits['regression'].test)}")
    return checks, splits


def train(key: str, kind: str, cfg, args, say: Say) -> tuple[Path, bool]:
    """The run folder, trained now or (--reuse) found finished; and whether it was reused."""
    from textlora.pipeline import run_experiment
    from textlora.runs import is_run

    final = Path(cfg.output_dir) / cfg.name
    if args.reuse and is_run(final):
        say(f"{kind}: reusing the finished run {final}")
        return final, True
    say(f"{kind}: training {DATASETS[key][kind]} into {final} (load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}) ...")
    begun = time.perf_counter()
    run_dir = run_experiment(cfg, overwrite=True, quiet=True, say=lambda line: say("  " + line))
    say(f"{kind}: done in {(time.perf_counter() - begun) / 60:.1f} min")
    return run_dir, False


# --------------------------------------------------------------------------- binning and paired tests


def one_hot(ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Class ids as probability rows, so that textlora.stats (argmax) scores them as decisions."""
    out = np.zeros((len(ids), n_classes))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def bin_ids(values: np.ndarray, bins: dict[str, list], names: list[str]) -> np.ndarray:
    from textlora.regression import value_bins

    return np.array([names.index(b) for b in value_bins(values, bins)], dtype=np.int64)


def paired_figures(labels: np.ndarray, reg_probs: np.ndarray, cls_probs: np.ndarray, names: list[str],
                   seed: int) -> dict[str, Any]:
    """Binned regression (as one-hot rows) against the classifier, on the same rows: each side's accuracy
    and macro F1 with intervals, the paired differences with intervals and p, McNemar, per-class F1."""
    from sklearn.metrics import confusion_matrix, f1_score

    from textlora.stats import bootstrap_intervals, mcnemar_exact, metric_value, paired_bootstrap

    metrics = ("accuracy", "f1_macro")
    intervals = bootstrap_intervals(labels, {"regression": reg_probs, "classifier": cls_probs}, metrics=metrics,
                                    n_resamples=N_RESAMPLES, seed=seed)
    out: dict[str, Any] = {}
    for side, probs in (("regression_binned", reg_probs), ("classifier", cls_probs)):
        predicted = probs.argmax(axis=1)
        out[side] = {
            **{m: metric_value(m, labels, probs) for m in metrics},
            "intervals": {m: list(intervals[side.split("_")[0]][m]) for m in metrics},
            "f1_per_class": dict(zip(names, (float(v) for v in f1_score(labels, predicted, labels=range(len(names)),
                                                                       average=None, zero_division=0)))),
            "confusion_matrix": confusion_matrix(labels, predicted, labels=range(len(names))).tolist(),
            "predicted_counts": dict(zip(names, np.bincount(predicted, minlength=len(names)).tolist())),
        }
    right_reg, right_cls = reg_probs.argmax(axis=1) == labels, cls_probs.argmax(axis=1) == labels
    for m in metrics:
        diff, low, high, p = paired_bootstrap(labels, reg_probs, cls_probs, m, n_resamples=N_RESAMPLES, seed=seed)
        out[f"{m}_diff"] = {"diff": diff, "interval": None if low is None else [low, high], "bootstrap_p": p}
    out["accuracy_diff"]["mcnemar_p"] = mcnemar_exact(right_reg, right_cls)
    out["discordant"] = {"only_regression_binned_right": int(np.sum(right_reg & ~right_cls)),
                         "only_classifier_right": int(np.sum(~right_reg & right_cls))}
    return out


def verdict(name: str, figures: dict[str, Any], n: int) -> str:
    def pt(x: float) -> str:
        text = f"{x * 100:+.1f}"
        return "+0.0" if text == "-0.0" else text

    def p_text(p: float | None) -> str:
        return "p = -" if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.2g}")

    acc, f1 = figures["accuracy_diff"], figures["f1_macro_diff"]
    acc_sig = acc["mcnemar_p"] < ALPHA
    f1_sig = f1["bootstrap_p"] is not None and f1["bootstrap_p"] < ALPHA

    def word(d, sig):
        return ("significantly better" if d > 0 else "significantly worse") if sig else "no significant difference"

    return (f"{name}: regression binned vs classifier: accuracy {pt(acc['diff'])} pt "
            f"[{pt(acc['interval'][0])}, {pt(acc['interval'][1])}], McNemar {p_text(acc['mcnemar_p'])}: "
            f"{word(acc['diff'], acc_sig)}; macro F1 {pt(f1['diff'])} pt "
            f"[{pt(f1['interval'][0])}, {pt(f1['interval'][1])}], bootstrap {p_text(f1['bootstrap_p'])}: "
            f"{word(f1['diff'], f1_sig)}; on {n:,} test texts")


# --------------------------------------------------------------------------- one dataset


def keep(row: dict[str, Any] | None, keys) -> dict[str, Any] | None:
    return None if row is None else {k: row[k] for k in keys if k in row}


def benchmark_dataset(key: str, args, say: Say) -> dict[str, Any]:
    from textlora.data import fingerprint
    from textlora.runs import open_run, row_name

    spec = DATASETS[key]
    started = time.perf_counter()
    cfgs = {kind: load(key, kind, args) for kind in KINDS}
    checks, splits = check_same_rows(key, cfgs, args, say)

    runs, reused = {}, {}
    for kind in KINDS:
        runs[kind], reused[kind] = train(key, kind, cfgs[kind], args, say)
    records = {kind: open_run(runs[kind]).record() for kind in KINDS}
    reg, cls = records["regression"], records["classifier"]
    for kind in KINDS:  # the runs used the rows checked above (also catches a stale --reuse folder)
        checks[f"{kind}_fingerprint_matches"] = records[kind].data.get("fingerprint") == fingerprint(splits[kind])
        assert checks[f"{kind}_fingerprint_matches"], \
            f"{key}: the {kind} run at {runs[kind]} used other rows than its recipe gives now; train it again " \
            "(without --reuse)"

    reg_out = open_run(runs["regression"]).test_probs()
    cls_out = open_run(runs["classifier"]).test_probs()
    targets = np.asarray(reg_out.pop("labels"), dtype=np.float64)
    labels = np.asarray(cls_out.pop("labels"), dtype=np.int64)
    names = cls.label_names
    bins = open_run(runs["regression"]).task_file["bins"]
    assert bins is not None and list(bins) == names, f"{key}: regression bins {bins} do not name the classes {names}"
    checks["same_test_targets_as_loaded"] = bool(np.array_equal(targets, splits["regression"].test["label"].to_numpy())
                                                 and np.array_equal(labels, splits["classifier"].test["label"].to_numpy()))
    assert checks["same_test_targets_as_loaded"], f"{key}: a run's saved test labels are not its rows' labels"
    binned_truth = bin_ids(targets, bins, names)
    checks["binned_regression_target_equals_classifier_label"] = bool(np.array_equal(binned_truth, labels))
    assert checks["binned_regression_target_equals_classifier_label"], \
        f"{key}: the binned regression target differs from the classifier's test label on " \
        f"{int(np.sum(binned_truth != labels))} of {len(labels)} rows"

    reg_out["shipped"] = reg_out[reg.shipped_kind]
    cls_out["shipped"] = cls_out[cls.shipped_kind]
    comparisons: dict[str, Any] = {}
    for name, reg_key, cls_key in PAIRS:
        if reg_key not in reg_out or cls_key not in cls_out:
            comparisons[name] = {"skipped": f"regression row {reg_key!r} or classifier row {cls_key!r} not in the runs"}
            continue
        figures = paired_figures(labels, one_hot(bin_ids(reg_out[reg_key], bins, names), len(names)),
                                 cls_out[cls_key], names, reg.seed)
        figures["regression_row"] = reg.shipped_kind if reg_key == "shipped" else reg_key
        figures["classifier_row"] = cls.shipped_kind if cls_key == "shipped" else cls_key
        figures["verdict"] = verdict(name, figures, len(labels))
        comparisons[name] = figures
        say(figures["verdict"])
    # The runs' own figures must be what is recomputed here from their saved test outputs.
    ft = comparisons["fine-tuned"]
    checks["binned_accuracy_matches_run_record"] = abs(ft["regression_binned"]["accuracy"] - reg.final["bin_accuracy"]) < 1e-12
    checks["binned_f1_macro_matches_run_record"] = abs(ft["regression_binned"]["f1_macro"] - reg.final["bin_f1_macro"]) < 1e-12
    checks["classifier_accuracy_matches_run_record"] = abs(ft["classifier"]["accuracy"] - cls.final["accuracy"]) < 1e-12
    checks["classifier_f1_macro_matches_run_record"] = abs(ft["classifier"]["f1_macro"] - cls.final["f1_macro"]) < 1e-12
    for check in ("binned_accuracy_matches_run_record", "binned_f1_macro_matches_run_record",
                  "classifier_accuracy_matches_run_record", "classifier_f1_macro_matches_run_record"):
        if not checks[check]:
            say(f"WARNING: {check} is false")

    reg_rows = {**reg.baselines, "finetuned": reg.final, **({"ensemble": reg.ensemble} if reg.ensemble else {})}
    row_keys = ("n", *REGRESSION_METRICS, "mean_prediction", "intervals", "bin_accuracy", "bin_f1_macro", "bins",
                "partner", "weight", "seconds")
    regression = {
        "rows": {k: keep(reg_rows[k], row_keys) for k in REGRESSION_ROWS if k in reg_rows},
        "row_names": {k: (f"Fine-tuned ({reg.method})" if k == "finetuned" else row_name(k, reg.objective, reg.task))
                      for k in REGRESSION_ROWS if k in reg_rows},
        "shipped": {"kind": reg.shipped_kind, "reason": reg.shipped.get("reason")},
        "select_metric": reg.selection.get("metric"),
        "selected_step": reg.selection.get("step"),
        "validation_scores": reg.selection.get("validation_scores"),
        "verdicts": reg.verdicts(),
        "comparisons": reg.comparisons,
        "epochs": reg.epochs,
    }
    classifier = {
        "rows": {k: keep(r, ("n", "accuracy", "f1_macro", "roc_auc", "ece", "intervals")) for k, r in
                 {**cls.baselines, "finetuned": cls.final, **({"ensemble": cls.ensemble} if cls.ensemble else {})}.items()},
        "shipped": {"kind": cls.shipped_kind, "reason": cls.shipped.get("reason")},
        "select_metric": cls.selection.get("metric"),
        "selected_step": cls.selection.get("step"),
        "validation_scores": cls.selection.get("validation_scores"),
        "verdicts": cls.verdicts(),
        "epochs": cls.epochs,
    }
    n = {split: info["rows"] for split, info in reg.data["splits"].items()}
    return {
        "title": spec["title"],
        "recipes": {kind: f"recipes/{spec[kind]}" for kind in KINDS},
        "overrides": {kind: overrides(key, kind, args) for kind in KINDS},
        "changed_from_recipes": {"classifier": SAME_ROWS, "regression": []},
        "runs": {kind: str(runs[kind]) for kind in KINDS},
        "reused": reused,
        "rows_used": n,
        "test_rows": len(labels),
        "label_names": names,
        "label_bins": bins,
        "test_class_counts": dict(zip(names, np.bincount(labels, minlength=len(names)).tolist())),
        "test_rating_counts": {f"{v:g}": int(c) for v, c in zip(*np.unique(targets, return_counts=True))},
        "data_notes": reg.data.get("notes", []),
        "fingerprints": {kind: records[kind].data.get("fingerprint") for kind in KINDS},
        "checks": checks,
        "regression": regression,
        "classifier": classifier,
        "binned_vs_classifier": comparisons,
        "trainable_parameters": {kind: records[kind].params.get("trainable") for kind in KINDS},
        "timing": {kind: records[kind].timing for kind in KINDS},
        "seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- table


def _figure(value, interval, digits: int = 3) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    if interval:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text


def _pt(d: dict[str, Any]) -> str:
    def f(x):
        text = f"{x * 100:+.1f}"
        return "+0.0" if text == "-0.0" else text

    return f"{f(d['diff'])} [{f(d['interval'][0])}, {f(d['interval'][1])}]"


def _p(p) -> str:
    return "–" if p is None else ("< 0.001" if p < 0.001 else f"{p:.2g}")


def markdown(results: dict[str, dict[str, Any]]) -> str:
    out = []
    for result in results.values():
        n = result["rows_used"]
        reg = result["regression"]
        out.append(f"**{result['title']}**: {n['train']:,} training / {n['validation']:,} validation / "
                   f"{n['test']:,} test rows, the same for both runs; classes {', '.join(result['label_names'])}; "
                   f"regression ships {reg['shipped']['kind']}, classifier ships {result['classifier']['shipped']['kind']}")
        out.append("")
        out.append("| regression row | MAE [95 % CI] | RMSE [95 % CI] | Spearman [95 % CI] | R² | binned accuracy "
                   "| binned macro F1 |")
        out.append("|---|---|---|---|---|---|---|")
        for k, row in reg["rows"].items():
            iv = row.get("intervals") or {}
            out.append(f"| {reg['row_names'][k]} | {_figure(row['mae'], iv.get('mae'))} "
                       f"| {_figure(row['rmse'], iv.get('rmse'))} | {_figure(row.get('spearman'), iv.get('spearman'))} "
                       f"| {_figure(row.get('r2'), None)} | {_figure(row.get('bin_accuracy'), None)} "
                       f"| {_figure(row.get('bin_f1_macro'), None)} |")
        out.append("")
        out.append("| on the same test rows | regression binned: accuracy | classifier: accuracy | Δ accuracy, pt "
                   "| McNemar p | regression binned: macro F1 | classifier: macro F1 | Δ macro F1, pt | p (bootstrap) |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for name, c in result["binned_vs_classifier"].items():
            if "skipped" in c:
                out.append(f"| {name} | skipped: {c['skipped']} | | | | | | | |")
                continue
            r, k = c["regression_binned"], c["classifier"]
            label = name if name != "shipped" else f"shipped ({c['regression_row']} vs {c['classifier_row']})"
            out.append(f"| {label} | {_figure(r['accuracy'], r['intervals']['accuracy'])} "
                       f"| {_figure(k['accuracy'], k['intervals']['accuracy'])} | {_pt(c['accuracy_diff'])} "
                       f"| {_p(c['accuracy_diff']['mcnemar_p'])} | {_figure(r['f1_macro'], r['intervals']['f1_macro'])} "
                       f"| {_figure(k['f1_macro'], k['intervals']['f1_macro'])} | {_pt(c['f1_macro_diff'])} "
                       f"| {_p(c['f1_macro_diff']['bootstrap_p'])} |")
        out.append("")
        for line in reg["verdicts"]:
            out.append(f"- {line}")
        out.append("")
    out.append("Intervals: 95 % bootstrap over the test rows (1,000 resamples). Δ = regression binned − classifier "
               "(percentage points), paired bootstrap interval; McNemar's exact test on the rows each gets right; "
               "macro F1's p from the paired bootstrap. Binned: the predicted rating's bin of data.label_bins "
               "(the nearest bin when it falls between two).")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def cpu_flags() -> dict[str, bool]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS),
                        help="a subset, run in this order")
    parser.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding druglib/ and imdb/ (train / test parquet)")
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/rating-runs"), help="where the run folders go")
    parser.add_argument("--reuse", action="store_true",
                        help="skip training a run whose folder in --runs-dir is finished (its rows are still checked)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (textlora's --quick: 64 training rows, 32 test rows, 1 epoch, 64 tokens) to "
                             "check the script; the numbers mean nothing")
    parser.add_argument("--note", default=None, help="added to the JSON's note (what the machine was doing)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default benchmarks/results/rating_vs_classes.json; "
                             "/tmp/rating_vs_classes-quick.json with --quick)")
    args = parser.parse_args()
    args.shared_data = args.shared_data.resolve()
    args.runs_dir = args.runs_dir.resolve()
    if args.out is None:
        args.out = Path("/tmp/rating_vs_classes-quick.json") if args.quick else \
            Path(__file__).resolve().parent / "results" / "rating_vs_classes.json"

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()

    began = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, str]] = {}
    for key in args.datasets:
        def say(line: str, key=key) -> None:
            print(f"[{key}] {line}", flush=True)

        try:
            results[key] = benchmark_dataset(key, args, say)
        except Exception as err:  # a library bug or a failed check: say it with its traceback, go on
            trace = traceback.format_exc()
            say(f"FAILED: {type(err).__name__}: {err}\n{trace}")
            failed[key] = {"error": f"{type(err).__name__}: {err}", "traceback": trace}
            continue
        say(f"done in {results[key]['seconds'] / 60:.1f} min")

    table = markdown(results) + "".join(f"\n\n{DATASETS[k]['title']}: failed: {e['error']}" for k, e in failed.items())
    print("\n" + table + "\n", flush=True)
    from common import machine_info

    machine = {**machine_info(), "cpu_flags": cpu_flags()}  # write_result's machine, with the CPU's flags
    write_result(args.out, {
        "benchmark": "rating_vs_classes",
        "issue": "Recipes: IMDB rating (1-4, 7-10 in that data) and DrugLib rating (1-10) on the packaged MiniLM; "
                 "report MAE against the classical row and what binning the predicted rating gives against the "
                 "classifier recipes.",
        "quick": args.quick,
        "note": NOTE + (f" {args.note}" if args.note else ""),
        "machine": machine,
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "total_seconds": time.perf_counter() - began,
        "runs_dir": str(args.runs_dir),
        "shared_data": str(args.shared_data),
        "changed_from_recipes": {"classifier": SAME_ROWS, "why": "the regression run draws its seeded samples "
                                 "unstratified (a float target); stratify=false gives the classifier the same "
                                 "train, validation and test rows, row for row"},
        "test_rows": {k: r["test_rows"] for k, r in results.items()},
        "datasets": results,
        "failed": failed,
        "table_markdown": table,
    })
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
