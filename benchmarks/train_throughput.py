"""Training throughput: the seeds' plain Trainer recipe against textlora's pipeline.

Superseded by benchmarks/train_ablation.py (issue 15): here textlora's timed region holds an
evaluation, a checkpoint and per-step logging that the reference's does not, the levers are not
measured one at a time, and the textlora model is scored after merging its adapter into the bf16
base. Kept so the figures in benchmarks/results/train_throughput.json can be reproduced.

    python benchmarks/train_throughput.py --data ../shared/data/imdb --lengths 256 512 --compile

Both train the packaged MiniLM with LoRA r=8 on query/value (and its pooler,
which was never trained for classification: without it neither learns
anything in so few steps), on the same IMDB
rows, for the same number of optimizer steps (one pass, batch 16) with the same
optimiser settings, one after the other in this process, once per seed, then
score the same held-out rows:

- reference: written the way the seeds and Trainer tutorials do it:
  padding="max_length", fp32, the model's default attention dropout, the
  default collator, no length grouping;
- textlora: its own config and train stage (dynamic padding, length-grouped
  batches, attention dropout 0 so the fused SDPA kernel runs, precision auto).

Prints samples/s, real (non-pad) tokens/s, their ratio, the eval accuracy of
both, and the share of the bf16 (or fp32) matmul peak that the textlora run
reaches, with the peak measured here at start. Writes
benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, matmul_peak_gflops, write_result  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_rows(data: Path, rows: int, eval_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from textlora.data import clean_html

    train = pd.read_parquet(data / "train.parquet").sample(rows, random_state=seed)
    test = pd.read_parquet(data / "test.parquet").sample(eval_rows, random_state=seed)
    for frame in (train, test):
        frame["text"] = frame["text"].map(clean_html)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def accuracy(model, tokenizer, test: pd.DataFrame, max_length: int) -> float:
    from textlora.config import ModelConfig
    from textlora.encode import encode_texts
    from textlora.evaluate import predict_probs

    encoded = encode_texts(tokenizer, list(test.text), ModelConfig(max_length=max_length, truncation="head"))
    probs = predict_probs(model, encoded, tokenizer, batch_size=64)
    return float((probs.argmax(1) == test.label.to_numpy()).mean())


def reference_run(source: str, train: pd.DataFrame, test: pd.DataFrame, max_length: int, seed: int, lr: float, work: Path):
    """The seeds' recipe, as a user writes it from the Trainer tutorial."""
    import datasets
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.1,
                                             target_modules=["query", "value"], modules_to_save=["pooler"]))
    dataset = datasets.Dataset.from_pandas(train[["text", "label"]]).map(
        lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=max_length), batched=True
    )
    args = TrainingArguments(output_dir=str(work), num_train_epochs=1, per_device_train_batch_size=16,
                             learning_rate=lr, weight_decay=0.01, save_strategy="no", report_to=[], disable_tqdm=True,
                             seed=seed, use_cpu=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return seconds, accuracy(model.merge_and_unload(), tokenizer, test, max_length)


def textlora_run(source: str, train: pd.DataFrame, test: pd.DataFrame, max_length: int, seed: int, lr: float, work: Path,
                 compile: bool = False):
    from textlora.config import config_from_dict
    from textlora.encode import to_dataset
    from textlora.models import build_model, load_tokenizer
    from textlora.train import train_model

    cfg = config_from_dict({
        "seed": seed, "model": {"name": source, "max_length": max_length, "truncation": "head"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"], "modules_to_save": ["pooler"]},
        # The reference's optimisation settings (seed 002's weight decay, no warm-up): only the levers differ.
        "train": {"epochs": 1, "batch_size": 16, "learning_rate": lr, "weight_decay": 0.01, "warmup_ratio": 0.0,
                  "compile": compile},
    })
    tokenizer = load_tokenizer(source)
    model, _ = build_model(cfg, source, ["0", "1"], tokenizer)
    train_set = to_dataset(train.text, train.label, tokenizer, cfg.model)
    tiny_eval = to_dataset(test.text[:16], test.label[:16], tokenizer, cfg.model)  # the Trainer evaluates each epoch
    result = train_model(cfg, model, tokenizer, train_set, tiny_eval, ["0", "1"], work, quiet=True)
    merged = model.merge_and_unload().float()
    return result.seconds, accuracy(merged, tokenizer, test, max_length), result.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb")
    parser.add_argument("--rows", type=int, default=640, help="training rows (= optimizer steps x 16)")
    parser.add_argument("--eval-rows", type=int, default=500)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--compile", action="store_true",
                        help="also time textlora with train.compile: true (torch.compile; compile time included)")
    parser.add_argument("--seed", type=int, default=42, help="which rows are sampled")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43],
                        help="training seeds: both pipelines train once per seed (accuracy spread = noise)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "train_throughput.json")
    args = parser.parse_args()

    import tempfile

    import transformers

    from textlora.models import resolve_model_source

    transformers.logging.set_verbosity_error()
    source = resolve_model_source("packaged:minilm")
    from textlora.precision import resolve_precision

    # bf16 is measured only where it is native: emulated bf16 (e.g. AVX2-only
    # CPUs) runs at well under 1 GFLOP/s, and textlora trains in fp32 there.
    native_bf16 = resolve_precision("auto") == "bf16"
    peaks = {"fp32": matmul_peak_gflops(torch.float32),
             "bf16": matmul_peak_gflops(torch.bfloat16) if native_bf16 else None}
    print(f"matmul peak here ({torch.backends.cpu.get_cpu_capability()}): fp32 {peaks['fp32']:.0f} GFLOP/s, "
          + (f"bf16 {peaks['bf16']:.0f} GFLOP/s" if native_bf16 else "bf16 not native (textlora trains in fp32)"))
    train, test = load_rows(args.data, args.rows, args.eval_rows, args.seed)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    lengths_all = np.array([len(ids) for ids in tokenizer(list(train.text), truncation=False)["input_ids"]])
    from transformers import AutoModel

    body = AutoModel.from_pretrained(source)
    # Matmul weights a token passes through (embeddings are lookups, not matmuls).
    n_params = sum(p.numel() for n, p in body.named_parameters() if p.dim() == 2 and "embeddings" not in n)
    layers, width = body.config.num_hidden_layers, body.config.hidden_size
    del body
    results = []
    for max_length in args.lengths:
        kept = np.minimum(lengths_all, max_length)
        real_tokens = int(kept.sum())
        ref_s = ours_s = 0.0
        ref_acc, ours_acc = [], []
        # Seeds alternate reference and textlora runs, so a change in the
        # machine's load hits both; accuracy is compared across seeds.
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as work:
                seconds, acc = reference_run(source, train, test, max_length, seed, args.lr, Path(work) / "ref")
                ref_s, ref_acc = ref_s + seconds, ref_acc + [acc]
                seconds, acc, precision = textlora_run(source, train, test, max_length, seed, args.lr, Path(work) / "ours")
                ours_s, ours_acc = ours_s + seconds, ours_acc + [acc]
        with tempfile.TemporaryDirectory() as work:
            compiled = textlora_run(source, train, test, max_length, args.seeds[0], args.lr, Path(work) / "compiled",
                                    compile=True) if args.compile else None
        # Training FLOPs on real tokens (an estimate, stated as such): forward
        # 2N per token through the N matmul weights, plus the backward pass
        # through the frozen body for activation gradients only, another 2N
        # (frozen weights get no weight gradients; LoRA's are negligible).
        # Attention: 4 l d per token and layer for a text of l tokens forward,
        # about twice that backward: 3 x 4 d l^2 per text and layer.
        flops = 4 * n_params * real_tokens + 3 * 4 * width * layers * float((kept.astype(np.float64) ** 2).sum())
        peak = peaks["bf16"] if precision == "bf16" else peaks["fp32"]
        runs = len(args.seeds)
        row = {
            "max_length": max_length, "rows": len(train), "optimizer_steps": -(-len(train) // 16), "seeds": args.seeds,
            "real_tokens": real_tokens,
            "reference": {"seconds": ref_s, "samples_per_s": runs * len(train) / ref_s,
                          "real_tokens_per_s": runs * real_tokens / ref_s, "eval_accuracy_by_seed": ref_acc},
            "textlora": {"seconds": ours_s, "samples_per_s": runs * len(train) / ours_s,
                         "real_tokens_per_s": runs * real_tokens / ours_s, "eval_accuracy_by_seed": ours_acc,
                         "precision": precision, "utilisation_of_matmul_peak": runs * flops / ours_s / (peak * 1e9)},
            "speedup": ref_s / ours_s,
        }
        if compiled is not None:
            row["textlora_compiled"] = {"seconds": compiled[0], "samples_per_s": len(train) / compiled[0],
                                        "eval_accuracy": compiled[1],
                                        "speedup_vs_eager": (ours_s / runs) / compiled[0],
                                        "note": "torch.compile (Inductor), first seed; compile time included"}
        results.append(row)
        accuracies = lambda accs: "/".join(f"{a:.3f}" for a in accs)  # noqa: E731
        print(f"max_length {max_length}: reference {row['reference']['samples_per_s']:.2f} samples/s "
              f"(acc {accuracies(ref_acc)}), textlora {row['textlora']['samples_per_s']:.2f} samples/s "
              f"(acc {accuracies(ours_acc)}, {precision}) -> {row['speedup']:.2f}x; utilisation "
              f"{row['textlora']['utilisation_of_matmul_peak']:.0%} of the {precision} peak", flush=True)
        if compiled is not None:
            print(f"    torch.compile: {row['textlora_compiled']['samples_per_s']:.2f} samples/s "
                  f"({row['textlora_compiled']['speedup_vs_eager']:.2f}x eager, compile time included)", flush=True)
    write_result(args.out, {"benchmark": "train_throughput", "peaks_gflops": peaks, "results": results,
                            "eval_rows": len(test), "flops_per_real_token_estimate": "4N + 12 d layers l (see script)"})


if __name__ == "__main__":
    main()
