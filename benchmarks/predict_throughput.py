"""Inference: transformers.pipeline against textlora's backends, on one trained run's merged model.

    python benchmarks/predict_throughput.py /tmp/vsruns/vs-baselines-imdb --data ../shared/data/imdb --rows 2000

One run, side by side, on the same merged model (the run's adapter merged into its base in fp32,
textlora.predict.load_run_model) and the same IMDB test reviews (--rows, sampled with a fixed seed;
reviews whose text is also in IMDB's train split are left out):

- pipeline_fp32_b1 / pipeline_fp32_b64: transformers.pipeline("text-classification") as users call
  it (one text at a time, its default) and with batch_size=64; head truncation at the run's max_length;
- pipeline_bf16_b64: the same pipeline at batch 64 under torch.autocast(bfloat16);
- torch_fp32 / torch_bf16: textlora's Predictor (texts sorted by length, each batch padded to its
  longest) with --precision fp32 / bf16 (the model cast to bf16);
- onnx_fp32 / onnx_int8: the Predictor on the run's ONNX export (onnxruntime; int8: dynamic
  quantization), from --onnx-fp32 / --onnx-int8 folders written by `textlora export RUN --onnx DIR`,
  or exported here with the same functions (textlora.onnxexport.write_onnx, quantize_int8);
- onnx_fp32_fused / onnx_int8_fused: not in textlora (a lead): the same export passed through
  onnxruntime's transformer optimizer (onnxruntime.transformers.optimizer, model_type bert: fused
  SkipLayerNormalization and BiasGelu), then quantized the same way.

The Predictor scores the fine-tuned model alone (component finetuned), with the run's own
preprocessing (HTML clean-up, its truncation: head_tail for this IMDB run); the pipeline gets the
cleaned texts. Per backend: texts/s at batch 64 over all rows (after a warm-up batch), p50 / p99
latency of single-text calls on --latency-rows texts, label agreement with torch_fp32, accuracy on
the labelled rows. A check that the pipeline runs the same model: the Predictor in fp32 with head
truncation must give the pipeline's labels (--check-rows texts).

Goals (issue 15): >= 3x the pipeline's fp32 throughput with <= 0.5 pt accuracy loss without bf16;
>= 5x where bf16 is native; single-text p50 latency <= 1/3 of the pipeline's. The pipeline's fp32
throughput is the better of its batch 1 and batch 64. Writes benchmarks/results/predict_throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
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

BACKENDS = ("pipeline_fp32_b1", "pipeline_fp32_b64", "pipeline_bf16_b64", "torch_fp32", "torch_bf16", "onnx_fp32",
            "onnx_int8", "onnx_fp32_fused", "onnx_int8_fused")
ONNX_KINDS = ("fp32", "int8", "fp32_fused", "int8_fused")


def held_out_reviews(data: Path, rows: int, seed: int) -> pd.DataFrame:
    train_texts = set(pd.read_parquet(data / "train.parquet", columns=["text"]).text)
    test = pd.read_parquet(data / "test.parquet")
    test = test[~test.text.isin(train_texts)]
    return test.sample(rows, random_state=seed).reset_index(drop=True)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def latencies_ms(fn, texts: list[str]) -> dict:
    fn(texts[:1])  # warm-up
    times = []
    for text in texts:
        start = time.perf_counter()
        fn([text])
        times.append(1000 * (time.perf_counter() - start))
    p50, p99 = np.percentile(times, [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2), "mean": round(float(np.mean(times)), 2),
            "calls": len(times)}


def onnx_models(run, merged, folder: Path, kinds: list[str], given: dict[str, Path | None]) -> tuple[dict, dict]:
    """The ONNX classifiers: the given export folders (checked against the run), else exported here."""
    import onnxruntime as ort

    from textlora.models import load_tokenizer
    from textlora.onnxexport import ONNX_FILE, OnnxClassifier, _session, load_onnx_classifier, quantize_int8, write_onnx

    out, how, paths = {}, {}, {}

    def path_of(kind: str) -> Path:
        if kind in paths:
            return paths[kind]
        path = folder / kind / ONNX_FILE
        path.parent.mkdir(parents=True)
        if kind == "fp32":
            write_onnx(merged, load_tokenizer(str(run.path / "tokenizer")), path)
        elif kind == "fp32_fused":
            from onnxruntime.transformers.optimizer import optimize_model

            fused = optimize_model(str(path_of("fp32")), model_type="bert", num_heads=merged.config.num_attention_heads,
                                   hidden_size=merged.config.hidden_size)
            how["fused_operators"] = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
            fused.save_model_to_file(str(path))
        else:  # int8, int8_fused
            quantize_int8(path_of(kind.replace("int8", "fp32")), path)
        paths[kind] = path
        return path

    for kind in kinds:
        if given.get(kind):
            out[kind] = load_onnx_classifier(given[kind], run)
            how[kind] = str(given[kind])
            continue
        path = path_of(kind)
        out[kind] = OnnxClassifier(_session(ort, path), path.parent)
        how[kind] = {"fp32": "onnxexport.write_onnx", "int8": "onnxexport.write_onnx + quantize_int8",
                     "fp32_fused": "write_onnx + onnxruntime.transformers.optimizer (bert)",
                     "int8_fused": "write_onnx + onnxruntime.transformers.optimizer (bert) + quantize_int8"}[kind] \
            + ", in this script"
    return out, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder (a trained classifier, e.g. an IMDB run)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb",
                        help="a folder with test.parquet and train.parquet (text, label)")
    parser.add_argument("--rows", type=int, default=2000, help="reviews timed at batch 64")
    parser.add_argument("--latency-rows", type=int, default=300, help="reviews sent one at a time for latency")
    parser.add_argument("--check-rows", type=int, default=300, help="reviews for the same-model check")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--onnx-fp32", type=Path, help="the run's fp32 ONNX export (else exported here)")
    parser.add_argument("--onnx-int8", type=Path, help="the run's int8 ONNX export (else exported here)")
    parser.add_argument("--seed", type=int, default=0, help="which reviews are sampled")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "predict_throughput.json")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import pipeline

    from textlora.data import clean_html
    from textlora.predict import Predictor, load_run_model
    from textlora.precision import cast_for_inference, resolve_precision
    from textlora.runs import open_run

    transformers.logging.set_verbosity_error()
    run = open_run(args.run)
    frame = held_out_reviews(args.data, args.rows, args.seed)
    raw, labels = list(frame.text), frame.label.to_numpy()
    cleaned = [clean_html(t) for t in raw]
    native_bf16 = resolve_precision("auto") == "bf16"
    backends = [b for b in args.backends if native_bf16 or "bf16" not in b]  # emulated bf16: slower than fp32

    merged = load_run_model(run, merge=True).eval()  # fp32, the adapter merged in fp32
    fp32 = Predictor.for_model(run, merged, args.batch_size, component="finetuned")
    max_length = fp32.model_cfg.max_length
    predictors = {"torch_fp32": fp32}
    if "torch_bf16" in backends:
        import copy

        predictors["torch_bf16"] = Predictor.for_model(run, cast_for_inference(copy.deepcopy(merged), "bf16"),
                                                       args.batch_size, component="finetuned")
    work = tempfile.TemporaryDirectory()
    onnx_source = {}
    kinds = [k for k in ONNX_KINDS if f"onnx_{k}" in backends]
    if kinds:
        models, onnx_source = onnx_models(run, merged, Path(work.name), kinds,
                                          {"fp32": args.onnx_fp32, "int8": args.onnx_int8})
        for kind, model in models.items():
            predictors[f"onnx_{kind}"] = Predictor.for_model(run, model, args.batch_size, component="finetuned")

    classify = pipeline("text-classification", model=merged, tokenizer=fp32.tokenizer, device="cpu")
    label_id = {name: i for i, name in merged.config.id2label.items()}

    def run_pipeline(texts, batch_size=None, bf16=False):
        context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        kwargs = {"batch_size": batch_size} if batch_size else {}
        with context, torch.inference_mode():
            out = classify(texts, truncation=True, max_length=max_length, **kwargs)
        return np.array([label_id[o["label"]] for o in out])

    calls = {
        "pipeline_fp32_b1": (lambda texts: run_pipeline(texts), True),
        "pipeline_fp32_b64": (lambda texts: run_pipeline(texts, args.batch_size), True),
        "pipeline_bf16_b64": (lambda texts: run_pipeline(texts, args.batch_size, bf16=True), True),
        **{name: (lambda texts, p=p: p.predict_probs(texts).argmax(1), False) for name, p in predictors.items()},
    }
    latency_calls = {
        "pipeline_fp32_b1": lambda texts: run_pipeline(texts),
        "pipeline_bf16_b64": lambda texts: run_pipeline(texts, bf16=True),  # one text: batch size is moot
        **{name: (lambda texts, p=p: p.predict_probs(texts)) for name, p in predictors.items()},
    }
    results = {}
    for name in backends:
        fn, is_pipeline = calls[name]
        texts = cleaned if is_pipeline else raw  # the Predictor cleans HTML itself, as the run did
        fn(texts[: args.batch_size])  # warm-up: allocation, oneDNN / onnxruntime kernel choice
        seconds, predicted = timed(lambda: fn(texts))
        results[name] = {"seconds": seconds, "texts_per_s": len(texts) / seconds, "labels": predicted}
        line = f"{name:18s} {len(texts) / seconds:8.1f} texts/s"
        if name in latency_calls:
            lat_texts = (cleaned if is_pipeline else raw)[: args.latency_rows]
            results[name]["latency_ms_single_text"] = latencies_ms(latency_calls[name], lat_texts)
            line += f"   single text p50 {results[name]['latency_ms_single_text']['p50']:.1f} ms"
        print(line, flush=True)

    reference = results["torch_fp32"]["labels"] if "torch_fp32" in results else None
    accuracy_fp32 = float((reference == labels).mean()) if reference is not None else None
    rows = {}
    for name, r in results.items():
        accuracy = float((r["labels"] == labels).mean())
        rows[name] = {k: v for k, v in r.items() if k != "labels"}
        rows[name]["accuracy"] = accuracy
        if reference is not None:
            rows[name]["agreement_with_torch_fp32"] = float((r["labels"] == reference).mean())
            rows[name]["accuracy_change_points_vs_torch_fp32"] = 100 * (accuracy - accuracy_fp32)

    # Same model check: the Predictor with the pipeline's truncation (head) gives the pipeline's labels.
    check = None
    pipeline_labels = results.get("pipeline_fp32_b64", results.get("pipeline_fp32_b1", {})).get("labels")
    if pipeline_labels is not None:
        import dataclasses

        head = Predictor(merged, fp32.tokenizer, fp32.label_names,
                         dataclasses.replace(fp32.model_cfg, truncation="head"), clean=True, batch_size=args.batch_size)
        n = min(args.check_rows, len(raw))
        check = {"rows": n, "agreement_pipeline_vs_textlora_fp32_head_truncation":
                 float((head.predict_probs(raw[:n]).argmax(1) == pipeline_labels[:n]).mean())}

    figures = {
        "run": str(args.run), "run_name": run.info.get("name"), "rows": len(raw), "max_length": max_length,
        "textlora_truncation": fp32.model_cfg.truncation, "pipeline_truncation": "head",
        "batch_size": args.batch_size, "native_bf16": native_bf16, "onnx_models": onnx_source,
        "threads": torch.get_num_threads(), "backends": rows, "same_model_check": check,
        "note": "textlora backends score the fine-tuned model alone (component finetuned), not the run's shipped "
                "ensemble; agreement and accuracy changes are against torch_fp32 (same preprocessing)",
    }
    goals = {}
    pipe = [rows[n]["texts_per_s"] for n in ("pipeline_fp32_b1", "pipeline_fp32_b64") if n in rows]
    if pipe:
        base = max(pipe)
        # textlora's own backends only (the fused ONNX rows are a lead, not something textlora ships yet).
        within = {n: r for n, r in rows.items() if not n.startswith("pipeline") and not n.endswith("_fused")
                  and r.get("accuracy_change_points_vs_torch_fp32", 0) >= -0.5}
        no_bf16 = {n: r for n, r in within.items() if "bf16" not in n}
        for goal, pool, target in (("without_bf16_3x", no_bf16, 3.0), ("with_bf16_5x", within, 5.0)):
            if pool and (goal != "with_bf16_5x" or native_bf16):
                best = max(pool, key=lambda n: pool[n]["texts_per_s"])
                ratio = pool[best]["texts_per_s"] / base
                goals[goal] = {"best": best, "speedup_vs_pipeline_fp32": ratio, "met": ratio >= target}
        if "pipeline_fp32_b1" in rows and "latency_ms_single_text" in rows["pipeline_fp32_b1"]:
            pipe_p50 = rows["pipeline_fp32_b1"]["latency_ms_single_text"]["p50"]
            ours = {n: r["latency_ms_single_text"]["p50"] for n, r in within.items() if "latency_ms_single_text" in r}
            if ours:
                best = min(ours, key=ours.get)
                goals["single_text_p50_third"] = {"best": best, "p50_ms": ours[best], "pipeline_p50_ms": pipe_p50,
                                                  "ratio": ours[best] / pipe_p50, "met": ours[best] <= pipe_p50 / 3}
        goals["pipeline_fp32_texts_per_s"] = base
    figures["goals"] = goals
    print(f"accuracy torch fp32 {accuracy_fp32}; same-model check {check}")
    for name, goal in goals.items():
        print(f"goal {name}: {goal}")
    write_result(args.out, {"benchmark": "predict_throughput", **figures})
    work.cleanup()


if __name__ == "__main__":
    main()
