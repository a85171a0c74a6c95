"""Headroom: MiniLM's own matmul shapes at their peak, training and inference FLOP/s as a share of it,
and where the rest of the time goes.

    python benchmarks/headroom.py --data ../shared/data/imdb

1. Shape peaks. The 2048^3 square matmul says little about MiniLM: its matmuls are (batch x tokens)
   x 384 by 384x384 (query, key, value, attention output), 384x1536 (intermediate) and 1536x384
   (output), forward and, with the base frozen, the same shapes again for the input gradients. Each
   is timed (best of --repeats after a warm-up) through torch.nn.functional.linear in fp32 and, where
   bf16 is native, in bf16 (inputs and weights bf16, as textlora holds the frozen base), for M =
   batch x tokens from 16 to 64 x 512. The layer's mix (4 x 384x384 + 384x1536 + 1536x384) at its
   peak is the yardstick: "shape-peak". int8 too (torch._int_mm, int8 x int8 -> int32: the matmul an
   int8 backend runs, activation quantization not counted), for the ceilings of point 5.
2. Training FLOP/s: textlora's real train stage (textlora.train.train_model, LoRA r=8 on query/value
   + pooler + head, as in train_ablation.py) for --steps optimizer steps per configuration, timed as
   train_ablation.py times them (batch fetch through on_step_end). FLOPs are counted analytically from
   each batch's padded shape (linear forward 2N per token, input gradients 2N per token, LoRA forward
   and backward, attention 4 L^2 d forward and 8 L^2 d backward per layer), checked once against
   torch.utils.flop_counter.FlopCounterMode. Share = (time the same matmul FLOPs take at the
   shape-peak of each step's M) / (measured time); also FLOP/s on real (non-pad) tokens.
3. Inference FLOP/s: the Predictor path (textlora.evaluate.predict_logits: sorted, batch 64) in fp32
   and bf16 on --infer-rows reviews, the same share.
4. Where the time goes: torch.profiler over --profile-steps training steps and a few inference
   batches, self CPU time grouped by op type: matmul, attention, LayerNorm, GELU, dropout, casts,
   other elementwise, embedding, loss, optimizer, data collation; Python / framework time is the
   rest of the wall time.
5. Inference ceilings: per matmul precision (bf16, int8), the fp32 inference run with its linear
   layers sped up by that precision's shape-peak over fp32's and everything else (attention, GELU,
   LayerNorm, casts, Python) as fast as in the fastest measured precision: over the measured fp32
   texts/s, the most a change of matmul precision can buy on this CPU (issue 15's inference goals
   are ratios to fp32 throughput).

Writes benchmarks/results/headroom.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import matmul_peak_gflops, write_result  # noqa: E402
from train_ablation import LORA, LoopTimer, load_rows, textlora_config  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HIDDEN, INTERMEDIATE, LAYERS, HEADS = 384, 1536, 6, 12
LAYER_SHAPES = ((HIDDEN, HIDDEN, 4), (HIDDEN, INTERMEDIATE, 1), (INTERMEDIATE, HIDDEN, 1))
"""(in, out, count) of the linear layers of one MiniLM layer: query, key, value, attention output;
intermediate; output."""
LINEAR_PER_TOKEN = sum(i * o * c for i, o, c in LAYER_SHAPES) * LAYERS  # weights a token meets: 10.6 M


# --------------------------------------------------------------------------- shape peaks


def linear_gflops(m: int, k: int, n: int, dtype, repeats: int) -> float:
    """Best of `repeats` samples, each the mean of enough calls to last ~20 ms (small shapes take ~0.1 ms).

    int8: torch._int_mm (int8 x int8 -> int32, oneDNN; VNNI where the CPU has it), the matmul an int8
    backend runs once weights and activations are quantized; the quantization of the activations
    is not in it, so this is a ceiling for int8, not what a backend reaches."""
    if dtype == torch.int8:
        x = torch.randint(-128, 128, (m, k), dtype=torch.int8)
        w = torch.randint(-128, 128, (n, k), dtype=torch.int8).t()  # (k, n), laid out as a Linear weight

        def call():
            return torch._int_mm(x, w)
    else:
        x = torch.randn(m, k).to(dtype)
        w = torch.randn(n, k).to(dtype)

        def call():
            return torch.nn.functional.linear(x, w)
    start = time.perf_counter()
    for _ in range(3):  # warm-up: oneDNN picks and caches its kernel
        call()
    calls = max(1, int(0.02 / ((time.perf_counter() - start) / 3)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return 2 * m * k * n / best / 1e9


def shape_peaks(ms: list[int], dtypes: dict, repeats: int) -> dict:
    """GFLOP/s of each MiniLM shape and of the layer's mix, per dtype and M. The dtypes of one shape
    are timed one after the other, so their ratios hold even where the machine's speed drifts
    (a shared 2-core VM's fp32 peak moved by a third between runs minutes apart)."""
    out: dict[str, dict] = {name: {} for name in dtypes}
    for m in ms:
        for name, dtype in dtypes.items():
            shapes = {f"{k}x{n}": linear_gflops(m, k, n, dtype, repeats) for k, n, _ in LAYER_SHAPES}
            flops = sum(2 * m * k * n * c for k, n, c in LAYER_SHAPES)
            seconds = sum(2 * m * k * n * c / (shapes[f"{k}x{n}"] * 1e9) for k, n, c in LAYER_SHAPES)
            out[name][str(m)] = {**{k: round(v, 1) for k, v in shapes.items()}, "layer_mix": round(flops / seconds / 1e9, 1)}
            print(f"shape peak {name} M={m:6d}: " + ", ".join(f"{k} {v:.0f}" for k, v in out[name][str(m)].items())
                  + " GFLOP/s", flush=True)
    return out


def peak_at(peaks: dict, dtype: str, m: int) -> float:
    """The layer-mix shape-peak at the measured M nearest to m (on a log scale), in FLOP/s."""
    measured = sorted(int(k) for k in peaks[dtype])
    nearest = min(measured, key=lambda x: abs(np.log(x) - np.log(max(m, 1))))
    return peaks[dtype][str(nearest)]["layer_mix"] * 1e9


# --------------------------------------------------------------------------- FLOP counts


def lora_flops_per_token(r: int = LORA["r"], targets: int = len(LORA["target_modules"])) -> int:
    """LoRA on `targets` 384x384 layers per layer: forward x A then B (2 x 2 d r), backward the input
    gradient and both weight gradients (about 2x forward)."""
    return 3 * targets * 2 * 2 * HIDDEN * r * LAYERS


FIRST_LAYER_QKV = 3 * HIDDEN * HIDDEN
"""Weights whose input gradient is never computed: layer 0's query, key and value read the frozen
embeddings, which need no gradient."""


def train_flops(batch: int, length: int) -> dict:
    """FLOPs of one training step on a batch padded to `length`, frozen base: linear forward 2N and
    input gradients 2N per token (no weight gradients for frozen weights; none through layer 0's
    query/key/value either), LoRA, and attention (QK^T and AV: 4 L^2 d per layer forward, 8 L^2 d
    backward; the flash kernel's recomputation of QK^T in backward not counted)."""
    tokens = batch * length
    linear = (4 * LINEAR_PER_TOKEN - 2 * FIRST_LAYER_QKV) * tokens
    attention = 12 * HIDDEN * length * length * batch * LAYERS
    return {"linear": linear, "lora": lora_flops_per_token() * tokens, "attention": attention,
            "total": linear + lora_flops_per_token() * tokens + attention}


def infer_flops(batch: int, length: int) -> dict:
    tokens = batch * length
    linear = 2 * LINEAR_PER_TOKEN * tokens
    attention = 4 * HIDDEN * length * length * batch * LAYERS
    return {"linear": linear, "attention": attention, "total": linear + attention}


def flop_counter_check(model, batch: dict, precision: str) -> dict:
    """FlopCounterMode's count of one forward + backward against the analytic count. FlopCounterMode has
    no formula for the CPU flash-attention ops (_scaled_dot_product_flash_attention_for_cpu and its
    backward): it counts them as 0, so the comparison is on the linear layers + LoRA."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    counter = FlopCounterMode(display=False)
    with counter, context:
        model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    b, length = batch["input_ids"].shape
    analytic = train_flops(int(b), int(length))
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {"batch": [int(b), int(length)], "counted_by_flop_counter": int(counter.get_total_flops()),
            "counted_by_op": by_op, "analytic_linear_and_lora": analytic["linear"] + analytic["lora"],
            "analytic_attention_not_counted_by_flop_counter": analytic["attention"]}


# --------------------------------------------------------------------------- profiles


CATEGORIES = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul", "aten::mkldnn", "aten::_mkldnn",
                "mkldnn::", "aten::addmv", "aten::mv", "aten::baddbmm")),
    ("attention", ("scaled_dot_product", "aten::_softmax", "aten::softmax", "aten::_softmax_backward_data")),
    ("layernorm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("dropout", ("dropout", "bernoulli")),
    ("cast_copy", ("aten::to", "aten::_to_copy", "aten::copy_", "aten::clone", "aten::contiguous")),
    ("embedding", ("embedding",)),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax")),
)
ANCESTOR_CATEGORIES = (("optimizer", "Optimizer."), ("data_collation", "enumerate(DataLoader)"),
                       ("embedding", "aten::embedding"),
                       ("attention", "scaled_dot_product"), ("dropout", "aten::dropout"),
                       ("dropout", "aten::native_dropout"), ("layernorm", "layer_norm"), ("gelu", "gelu"),
                       ("loss", "cross_entropy"))


def categorise(event) -> str:
    """The op type of a profiler event: by the ranges it runs inside (the optimizer step, the DataLoader's
    next batch, an attention or dropout op that calls other ops), else by its own name."""
    node = event
    while node is not None:
        for category, marker in ANCESTOR_CATEGORIES:
            if marker in node.name:
                return category
        node = node.cpu_parent
    for category, markers in CATEGORIES:
        if any(m in event.name for m in markers):
            return category
    return "other_aten" if event.name.startswith("aten::") else "autograd_and_ranges"


def breakdown(prof, wall_seconds: float) -> dict:
    """Self CPU time by op type; what no op accounts for (Python, the Trainer, dispatch) is the rest."""
    totals: dict[str, float] = {}
    top: dict[str, float] = {}
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CPU or event.self_cpu_time_total <= 0:
            continue
        category = categorise(event)
        totals[category] = totals.get(category, 0.0) + event.self_cpu_time_total / 1e6
        top[event.name] = top.get(event.name, 0.0) + event.self_cpu_time_total / 1e6
    counted = sum(totals.values())
    totals["python_framework_rest"] = max(0.0, wall_seconds - counted)
    shares = {k: round(v / wall_seconds, 4) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}
    return {"wall_seconds": wall_seconds, "seconds": {k: round(v, 3) for k, v in totals.items()},
            "share_of_wall": shares,
            "top_ops_seconds": {k: round(v, 3) for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:15]}}


class ProfileSteps:
    """A TrainerCallback that profiles optimizer steps first..last (1-based), fetch included: it starts
    at the end of step first-1 and stops at the end of step last."""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last
        self.prof, self.began, self.wall = None, None, None

    def callback(self):
        from transformers import TrainerCallback

        outer = self

        class Hook(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == outer.first - 1:
                    outer.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                    outer.prof.__enter__()
                    outer.began = time.perf_counter()
                elif state.global_step == outer.last and outer.prof is not None:
                    outer.wall = time.perf_counter() - outer.began
                    outer.prof.__exit__(None, None, None)

        return Hook()


# --------------------------------------------------------------------------- measurements


def train_measure(source, train, batch_size: int, max_length: int, precision: str, steps: int, profile_steps: int,
                  peaks: dict, check_flops: bool, seed: int = 42) -> dict:
    from textlora.encode import to_dataset
    from textlora.models import build_model, load_tokenizer
    from textlora.train import train_model

    total_steps = steps + profile_steps
    cfg = textlora_config(source, max_length, seed, total_steps, batch_size, 3e-3, {"train.precision": precision})
    tokenizer = load_tokenizer(source)
    model, _ = build_model(cfg, source, ["0", "1"], tokenizer)
    rows = train.sample(total_steps * batch_size, random_state=seed) if len(train) > total_steps * batch_size else train
    train_set = to_dataset(rows.text, rows.label, tokenizer, cfg.model)
    timer = LoopTimer()
    profile = ProfileSteps(steps + 1, total_steps)
    with tempfile.TemporaryDirectory() as work, timer.active():
        result = train_model(cfg, model, tokenizer, train_set, train_set.select(range(8)), ["0", "1"], Path(work),
                             quiet=True, max_steps=total_steps, eval_steps=total_steps,
                             callbacks=(timer.callback(), profile.callback()), select_metric="loss")
    timing = timer.summary()
    # The FLOP/s figures use the unprofiled steps only (the profiler slows ops down); the first step
    # (allocation, kernel choice) is left out.
    shapes = timer.shapes[1:steps]
    seconds = sum(timing["step_seconds"][1:steps])
    flops = sum(train_flops(b, length)["total"] for b, length in shapes)
    matmul_flops = sum(train_flops(b, length)["linear"] + train_flops(b, length)["lora"] for b, length in shapes)
    ideal = sum((train_flops(b, length)["linear"] + train_flops(b, length)["lora"]) / peak_at(peaks, result.precision, b * length)
                for b, length in shapes)
    real = sum(timer.real_tokens[1:steps])
    padded = sum(b * length for b, length in shapes)
    row = {
        "precision": result.precision, "batch_size": batch_size, "max_length": max_length,
        "steps_measured": len(shapes), "seconds": seconds, "samples_per_s": sum(b for b, _ in shapes) / seconds,
        "mean_padded_length": float(np.mean([length for _, length in shapes])),
        "flops_per_s_executed": flops / seconds,
        "matmul_flops_per_s": matmul_flops / seconds,
        "share_of_shape_peak": ideal / seconds,
        "note_share": "time the steps' linear-layer FLOPs take at the layer-mix shape-peak of each step's M, "
                      "over the measured step time (attention FLOPs not in it)",
        "flops_per_s_on_real_tokens": flops * real / padded / seconds,
        "attention_share_of_flops": 1 - matmul_flops / flops,
    }
    if profile.prof is not None:
        row["profile"] = breakdown(profile.prof, profile.wall)
        row["profile"]["steps"] = profile_steps
    if check_flops:
        batch = next(iter(torch.utils.data.DataLoader(
            train_set.select(range(batch_size)), batch_size=batch_size,
            collate_fn=__import__("transformers").DataCollatorWithPadding(tokenizer))))
        row["flop_counter_check"] = flop_counter_check(model, batch, result.precision)
    print(f"train {result.precision} {batch_size}x{max_length}: {row['samples_per_s']:.2f} samples/s, "
          f"{row['flops_per_s_executed'] / 1e9:.0f} GFLOP/s executed, {row['share_of_shape_peak']:.0%} of the shape-peak",
          flush=True)
    return row


def infer_measure(source, test, max_length: int, precision: str, peaks: dict, batch_size: int = 64) -> dict:
    from textlora.config import ModelConfig
    from textlora.encode import encode_texts
    from textlora.evaluate import predict_logits
    from textlora.models import build_model, load_tokenizer
    from textlora.precision import cast_for_inference

    tokenizer = load_tokenizer(source)
    model, _ = build_model(textlora_config(source, max_length, 42, 1, 16, 1e-3, {}), source, ["0", "1"], tokenizer)
    model = cast_for_inference(model.merge_and_unload().float().eval(), precision)
    encoded = encode_texts(tokenizer, list(test.text), ModelConfig(max_length=max_length, truncation="head"))
    lengths = sorted((len(ids) for ids in encoded["input_ids"]), reverse=True)
    shapes = [(len(lengths[i:i + batch_size]), lengths[i]) for i in range(0, len(lengths), batch_size)]
    predict_logits(model, {k: v[:batch_size] for k, v in encoded.items()}, tokenizer, batch_size)  # warm-up
    start = time.perf_counter()
    predict_logits(model, encoded, tokenizer, batch_size)
    seconds = time.perf_counter() - start
    flops = sum(infer_flops(b, length)["total"] for b, length in shapes)
    linear = sum(infer_flops(b, length)["linear"] for b, length in shapes)
    ideal = {dtype: sum(infer_flops(b, length)["linear"] / peak_at(peaks, dtype, b * length) for b, length in shapes)
             for dtype in peaks}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        predict_logits(model, {k: v[: 2 * batch_size] for k, v in encoded.items()}, tokenizer, batch_size)
        wall = time.perf_counter() - began
    profile = breakdown(prof, wall)
    row = {"precision": precision, "batch_size": batch_size, "max_length": max_length, "texts": len(lengths),
           "seconds": seconds, "texts_per_s": len(lengths) / seconds, "flops_per_s_executed": flops / seconds,
           "matmul_flops_per_s": linear / seconds, "share_of_shape_peak": ideal[precision] / seconds,
           "linear_seconds_at_shape_peak": ideal,
           # Everything but the linear layers (attention, GELU, LayerNorm, casts, Python), as a share of
           # the profiled batches' wall time, applied to the timed run.
           "non_matmul_seconds": seconds * (1 - profile["seconds"].get("matmul", 0.0) / wall),
           "profile": profile}
    print(f"infer {precision} b{batch_size} len {max_length}: {row['texts_per_s']:.1f} texts/s, "
          f"{row['flops_per_s_executed'] / 1e9:.0f} GFLOP/s, {row['share_of_shape_peak']:.0%} of the shape-peak", flush=True)
    return row


def inference_ceilings(inference: list[dict], peaks: dict) -> dict:
    """The most texts/s a change of matmul precision could buy at each length: the fp32 run with its
    linear layers sped up by the ratio of the precision's shape-peak to fp32's at each batch's M
    (int8: activations quantized for free), and everything else (attention, GELU, LayerNorm, casts,
    Python) as fast as the fastest measured precision ran it (bf16 halves the bytes the elementwise
    ops move). Ratios of peaks timed back to back, applied to the fp32 run's own matmul time, so a
    drift of the machine's speed between the peaks and the run cancels."""
    out = {}
    for length in sorted({r["max_length"] for r in inference}):
        rows = [r for r in inference if r["max_length"] == length]
        fp32 = next(r for r in rows if r["precision"] == "fp32")
        matmul = fp32["seconds"] - fp32["non_matmul_seconds"]
        rest = min(r["non_matmul_seconds"] for r in rows)
        out[str(length)] = {"texts": fp32["texts"], "measured_fp32_texts_per_s": fp32["texts_per_s"],
                            "fp32_matmul_seconds": matmul,
                            "non_matmul_seconds": {r["precision"]: r["non_matmul_seconds"] for r in rows}}
        for dtype in peaks:
            speed = fp32["linear_seconds_at_shape_peak"]["fp32"] / fp32["linear_seconds_at_shape_peak"][dtype]
            ceiling = fp32["texts"] / (rest + matmul / speed)
            out[str(length)][dtype] = {"matmul_speed_vs_fp32": speed, "ceiling_texts_per_s": ceiling,
                                       "ceiling_vs_measured_fp32": ceiling / fp32["texts_per_s"]}
            print(f"ceiling {dtype} len {length}: matmuls {speed:.2f}x fp32's -> at most "
                  f"{ceiling / fp32['texts_per_s']:.2f}x the measured fp32 texts/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb")
    parser.add_argument("--train", nargs="+", default=["16x256", "16x512"], metavar="BATCHxLENGTH",
                        help="training configurations (each in bf16 where native, and in fp32)")
    parser.add_argument("--precisions", nargs="+", default=["auto", "fp32"], choices=["auto", "fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per configuration")
    parser.add_argument("--profile-steps", type=int, default=3, help="profiled training steps after them")
    parser.add_argument("--infer-rows", type=int, default=256, help="reviews scored per inference configuration")
    parser.add_argument("--infer-lengths", type=int, nargs="+", default=[256])
    parser.add_argument("--ms", type=int, nargs="+", default=[16 * 64, 16 * 128, 16 * 256, 16 * 512, 64 * 256, 64 * 512],
                        help="M = batch x tokens at which the shape peaks are measured")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "headroom.json")
    args = parser.parse_args()

    import transformers

    from textlora.models import resolve_model_source
    from textlora.precision import resolve_precision

    transformers.logging.set_verbosity_error()
    source = resolve_model_source("packaged:minilm")
    native_bf16 = resolve_precision("auto") == "bf16"
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if native_bf16 else {})}
    square = {name: matmul_peak_gflops(dtype) for name, dtype in dtypes.items()}
    print("square 2048^3: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in square.items()), flush=True)
    peaks = shape_peaks(args.ms, {**dtypes, "int8": torch.int8}, args.repeats)
    train, test = load_rows(args.data, 4000, args.infer_rows, 0)
    training = []
    for spec in args.train:
        batch_size, max_length = (int(x) for x in spec.lower().split("x"))
        for precision in dict.fromkeys(resolve_precision(p) for p in args.precisions):
            training.append(train_measure(source, train, batch_size, max_length, precision, args.steps,
                                          args.profile_steps, peaks, check_flops=not training))
    inference = [infer_measure(source, test, length, precision, peaks)
                 for length in args.infer_lengths for precision in dtypes]
    write_result(args.out, {
        "benchmark": "headroom", "square_2048_gflops": square, "shape_peaks_gflops": peaks,
        "minilm": {"layers": LAYERS, "hidden": HIDDEN, "intermediate": INTERMEDIATE, "heads": HEADS,
                   "linear_weights_per_token": LINEAR_PER_TOKEN, "lora": LORA},
        "flop_model": "training per token: 4 N linear (forward + input gradients, frozen base) + LoRA; per "
                      "sequence and layer 12 d L^2 attention; inference: 2 N + 4 d L^2; padded shapes",
        "training": training, "inference": inference, "inference_ceilings": inference_ceilings(inference, peaks),
    })


if __name__ == "__main__":
    main()
