"""Inference throughput: textlora's Predictor against transformers.pipeline("text-classification").

    python benchmarks/predict_throughput.py --data ../shared/data/imdb --rows 2000 [--run runs/imdb-minilm]

Both classify the same IMDB test reviews with the same merged model (a run's
adapter merged into MiniLM, or a freshly initialised MiniLM classifier when
no --run is given: speed does not depend on the weights' values), truncating
at the same max_length. The pipeline runs as users call it (one text at a
time, its default) and with batch_size=64; textlora sorts texts by length and
pads each batch only to its longest member, in fp32 (its default) and, where
the hardware runs bf16 natively, with `--precision bf16` (the model cast to
bf16). Checks they give the same labels, and how far bf16 probabilities move.
Writes benchmarks/results/predict_throughput.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--run", help="a run folder to take the merged model from")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "predict_throughput.json")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from textlora.config import ModelConfig
    from textlora.data import clean_html
    from textlora.models import resolve_model_source
    from textlora.predict import Predictor, cast_for_inference, load_run_model
    from textlora.precision import resolve_precision
    from textlora.runs import open_run

    transformers.logging.set_verbosity_error()
    texts = [clean_html(t) for t in pd.read_parquet(args.data / "test.parquet").sample(args.rows, random_state=0).text]
    if args.run:
        run = open_run(args.run)
        model, tokenizer = load_run_model(run), AutoTokenizer.from_pretrained(run.path / "tokenizer")
        labels = run.label_names
    else:
        source = resolve_model_source("packaged:minilm")
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
        tokenizer, labels = AutoTokenizer.from_pretrained(source), ["LABEL_0", "LABEL_1"]
    model.eval()
    predictor = Predictor(model, tokenizer, labels, ModelConfig(max_length=args.max_length), batch_size=64)

    timings = {}
    start = time.perf_counter()
    fp32_probs = predictor.predict_probs(texts)
    timings["textlora"] = time.perf_counter() - start
    ours = fp32_probs.argmax(1)
    bf16_probs = None
    if resolve_precision("auto") == "bf16":  # emulated bf16 is far slower than fp32: not worth timing
        import copy

        fast = Predictor(cast_for_inference(copy.deepcopy(model), "bf16"), tokenizer, labels,
                         ModelConfig(max_length=args.max_length), batch_size=64)
        start = time.perf_counter()
        bf16_probs = fast.predict_probs(texts)
        timings["textlora_bf16"] = time.perf_counter() - start
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    reference_labels = {}
    for name, kwargs in (("pipeline_batch_64", {"batch_size": 64}), ("pipeline_default", {})):
        start = time.perf_counter()
        out = classify(texts, truncation=True, max_length=args.max_length, **kwargs)
        timings[name] = time.perf_counter() - start
        reference_labels[name] = np.array([model.config.label2id[o["label"]] for o in out])
    agreement = {name: float((lab == ours).mean()) for name, lab in reference_labels.items()}
    figures = {
        "rows": len(texts), "max_length": args.max_length, "model": args.run or "untrained MiniLM classifier",
        "seconds": timings, "texts_per_second": {k: len(texts) / v for k, v in timings.items()},
        "speedup_vs_pipeline_default": timings["pipeline_default"] / timings["textlora"],
        "speedup_vs_pipeline_batch_64": timings["pipeline_batch_64"] / timings["textlora"],
        "label_agreement": agreement,
    }
    if bf16_probs is not None:
        figures["speedup_bf16_vs_pipeline_default"] = timings["pipeline_default"] / timings["textlora_bf16"]
        figures["bf16_vs_fp32"] = {"label_agreement": float((bf16_probs.argmax(1) == fp32_probs.argmax(1)).mean()),
                                   "max_abs_probability_difference": float(np.abs(bf16_probs - fp32_probs).max())}
    for name, seconds in timings.items():
        print(f"{name:20s} {len(texts) / seconds:8.1f} texts/s")
    if bf16_probs is not None:
        print(f"textlora bf16 vs pipeline default: {figures['speedup_bf16_vs_pipeline_default']:.2f}x; "
              f"bf16 vs fp32: {figures['bf16_vs_fp32']}")
    print(f"textlora vs pipeline default: {figures['speedup_vs_pipeline_default']:.2f}x; "
          f"vs pipeline batch 64: {figures['speedup_vs_pipeline_batch_64']:.2f}x; agreement {agreement}")
    write_result(args.out, figures)


if __name__ == "__main__":
    main()
