"""Which dynamic-int8 setting keeps a trained run's labels: textlora.onnxexport.INT8_SETTINGS side by side.

    python benchmarks/int8_options.py /tmp/runs/imdb-throughput --data ../shared/data/imdb --rows 600

The run's merged fp32 model is exported once (textlora.onnxexport.write_onnx), then quantized with
each setting (quantize_int8). Every model scores the same --rows reviews through textlora's Predictor
(the run's preprocessing, truncation and temperature): label agreement with torch fp32, accuracy of
both, the largest probability difference, texts/s of the ONNX pass (batch 64, after a warm-up batch)
and the file size.

The rows choose the default, so they are none of the run's test rows: reviews from the data's
train.parquet that the run did not train, validate or test on, sampled with --seed. The export's
own parity gate then measures the chosen setting on the test rows (parity.json).
Writes benchmarks/results/int8_options.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def selection_rows(run, data: Path, rows: int, seed: int) -> pd.DataFrame:
    """Reviews from data/train.parquet that are in none of the run's splits."""
    from textlora.config import config_from_dict
    from textlora.data import load_splits

    cfg = config_from_dict(run.config())
    splits = load_splits(cfg.data, cfg.seed, cfg.task)
    used = set(pd.concat([splits.train.text, splits.validation.text, splits.test.text]))
    pool = pd.read_parquet(data / "train.parquet")
    pool = pool[~pool.text.isin(used)]
    if len(pool) < rows:
        raise SystemExit(f"error: only {len(pool)} reviews outside the run's splits, asked for {rows}")
    picked = pool.sample(rows, random_state=seed).reset_index(drop=True)
    # The data's label column holds names or ids; the run's label ids are by its label names.
    if picked.label.dtype == object:
        picked["label"] = picked.label.map({name: i for i, name in enumerate(run.label_names)})
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained classification run folder")
    parser.add_argument("--data", type=Path, required=True, help="the run's data folder (train.parquet)")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", nargs="+", help="names in INT8_SETTINGS (default: all)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "int8_options.json")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from textlora.models import load_tokenizer
    from textlora.onnxexport import INT8_DEFAULT, INT8_SETTINGS, OnnxClassifier, _session, quantize_int8, write_onnx
    from textlora.predict import Predictor, load_run_model
    from textlora.runs import open_run

    torch.manual_seed(0)
    run = open_run(args.run)
    reviews = selection_rows(run, args.data, args.rows, args.seed)
    texts, labels = list(reviews.text), reviews.label.to_numpy()
    model = load_run_model(run, None, merge=True).eval()
    tokenizer = load_tokenizer(str(run.path / "tokenizer"))
    torch_probs = Predictor.for_model(run, model, 64, component="finetuned").predict_probs(texts, True)
    torch_labels = torch_probs.argmax(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32" / "model.onnx"
        fp32.parent.mkdir()
        write_onnx(model, tokenizer, fp32)
        for name in args.settings or list(INT8_SETTINGS):
            path = Path(tmp) / name / "model.onnx"
            path.parent.mkdir()
            quantize_int8(fp32, path, name)
            predictor = Predictor.for_model(run, OnnxClassifier(_session(ort, path), path.parent), 64,
                                            component="finetuned")
            predictor.predict_probs(texts[:64])  # warm-up: session start and first allocations
            start = time.perf_counter()
            probs = predictor.predict_probs(texts, True)
            seconds = time.perf_counter() - start
            onnx_labels = probs.argmax(1)
            results[name] = {
                "options": INT8_SETTINGS[name],
                "agreement_with_torch_fp32": float((onnx_labels == torch_labels).mean()),
                "accuracy_torch_fp32": float((torch_labels == labels).mean()),
                "accuracy_int8": float((onnx_labels == labels).mean()),
                "accuracy_change_points": 100 * float((onnx_labels == labels).mean() - (torch_labels == labels).mean()),
                "max_prob_diff": float(np.abs(probs - torch_probs).max()),
                "texts_per_s": len(texts) / seconds,
                "model_mib": path.stat().st_size / 2**20,
            }
            print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in results[name].items()}, flush=True)
    write_result(args.out, {
        "run": str(args.run), "rows": len(texts), "rows_from": "data train.parquet minus the run's splits",
        "seed": args.seed, "max_length": run.config()["model"]["max_length"], "textlora_default": INT8_DEFAULT,
        "onnxruntime": ort.__version__, "settings": results,
    })


if __name__ == "__main__":
    main()
