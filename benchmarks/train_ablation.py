"""Training ablation: the Trainer-tutorial reference, textlora, and textlora with one lever off at a time.

    python benchmarks/train_ablation.py --data ../shared/data/imdb --max-length 256 512 \
        --seeds 42 43 44 45 46 --steps 200 --batch-size 16

Every variant trains the packaged MiniLM with LoRA r=8 (alpha 16, dropout 0.1) on query/value plus
the pooler and the classification head, on the same IMDB rows, for the same number of optimizer
steps, with the same optimiser (AdamW, lr --lr, weight decay 0.01, linear decay, no warm-up) and the
same head truncation at --max-length. Variants:

- reference: written as the Trainer tutorials and the seeds do it: padding="max_length", fp32, the
  model's own attention dropout (0.1), the default collator, random batches;
- textlora: textlora's config and train stage (textlora.models.build_model, textlora.train.train_model)
  with every lever on: dynamic padding, length-grouped batches (served in random order since
  2026-12-05; in results written before, in transformers' order, the variant sorted_length_groups
  now), attention dropout 0 (the fused SDPA kernel), precision auto (bf16 autocast with the frozen
  Linear weights held in bf16 where bf16 is native);
- no_dynamic_padding: textlora, every batch padded to max_length. There is no config key for it:
  the benchmark swaps the collator that train_model builds (transformers.DataCollatorWithPadding)
  for one that pads to max_length. The batch order stays textlora's (lengths come from the rows);
- no_length_grouping: textlora with train.group_by_length: false (random batches);
- sorted_length_groups: textlora's length-grouped batches in transformers' order: each mega-batch
  of 50 batches from the longest texts to the shortest, a sawtooth (what textlora did before
  2026-12-05). No config key: the benchmark sets ShuffledLengthGroupedSampler.shuffle_batches;
- model_attention_dropout: textlora with model.attention_dropout: null (the model's 0.1);
- no_bf16_frozen: textlora in bf16 autocast but with the frozen base kept in fp32. There is no
  config key: the benchmark makes textlora.train.hold_frozen_weights_in_bf16 a no-op;
- fp32: textlora with train.precision: fp32 (no autocast, no bf16 weights);
- bf16_linear_only (not in `all`): only the frozen Linear weights held in bf16, LayerNorm and
  embedding weights left fp32, so the residual stream stays fp32 under autocast. What textlora's
  hold_frozen_weights_in_bf16 does since 2026-11-28 (adopted after train_ablation_speed.json: the
  same speed, autocast's own numerics); in results written before that, `textlora` held every
  frozen weight in bf16 and this variant was the candidate. Since then the two are the same.

Timed region, the same for every variant: the optimizer steps only. A step counts from fetching
its batch (sampler, collation) through forward, backward, the optimizer and scheduler step, to
the Trainer's on_step_end; the logging, evaluation and checkpointing the Trainer does between
steps (textlora logs every step and evaluates and saves at the end of training; the reference
does none) are outside it. The benchmark wraps Trainer.get_batch_samples to time the fetch and
record each batch's shape. The wall time of the whole call is recorded beside it.

Accuracy on --eval-rows held-out IMDB test reviews, outside the timed region, as textlora ships a
model: the trained trainable tensors (LoRA, pooler, head) loaded onto a fresh fp32 base, merged
in fp32, scored in fp32. With --diagnose, the variants that hold the frozen base in bf16 are also
scored as the earlier train_throughput.py (removed) did (merged into the bf16 base, then cast to fp32), and
as trained (unmerged, bf16 base, under autocast); --numerics compares the forward pass of the
three precision set-ups on the same batch before training. Both separate what the model learned
from what evaluation loses.

Order: for each seed, for each length, every variant (the order rotated by seed), so a change in
the machine's speed hits all variants alike. Results are written after every run (complete:
false until the end); --resume skips the runs an existing --out already holds.
Writes benchmarks/results/train_ablation.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import paired_seed_differences, write_result  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS = ("reference", "textlora", "no_dynamic_padding", "no_length_grouping", "sorted_length_groups",
            "model_attention_dropout", "no_bf16_frozen", "fp32")
EXTRA_VARIANTS = ("bf16_linear_only",)
"""Run only when named: candidate fixes, not levers of the issue."""
LEVER_OF = {
    "no_dynamic_padding": "dynamic padding",
    "no_length_grouping": "length-grouped batches",
    "sorted_length_groups": "length-grouped batches in random order (transformers' sawtooth order instead)",
    "model_attention_dropout": "attention dropout 0",
    "no_bf16_frozen": "frozen base held in bf16 (autocast stays on)",
    "fp32": "bf16 altogether (autocast and bf16 frozen weights)",
    "bf16_linear_only": "bf16 LayerNorm and embedding weights (candidate fix: only Linear weights held in bf16)",
}
LORA = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"], "modules_to_save": ["pooler"]}


# --------------------------------------------------------------------------- data


def load_rows(data: Path, rows: int, eval_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from textlora.data import clean_html

    train = pd.read_parquet(data / "train.parquet").sample(rows, random_state=seed)
    test = pd.read_parquet(data / "test.parquet").sample(eval_rows, random_state=seed)
    for frame in (train, test):
        frame["text"] = frame["text"].map(clean_html)
    return train.reset_index(drop=True), test.reset_index(drop=True)


# --------------------------------------------------------------------------- timing


class LoopTimer:
    """Times the optimizer steps of a Trainer and nothing else, the same way for every variant.

    A step is its batch fetch (Trainer.get_batch_samples: sampler, collation; wrapped while the
    timer is active) plus on_step_begin -> on_step_end (forward, backward, optimizer, scheduler).
    What the Trainer does after on_step_end (logging, evaluation, checkpoints) is not counted.
    """

    def __init__(self):
        self.fetch, self.compute, self.shapes, self.real_tokens = [], [], [], []
        self.cpu = []  # process CPU seconds (all threads) of each step: with 2 threads on 2 idle cores ~2x wall
        self._began = self._cpu_began = None
        self._fetch_cpu = 0.0

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class Hook(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._began, timer._cpu_began = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kwargs):
                timer.compute.append(time.perf_counter() - timer._began)
                timer.cpu.append(time.process_time() - timer._cpu_began + timer._fetch_cpu)

        return Hook()

    @contextlib.contextmanager
    def active(self):
        from transformers import Trainer

        original = Trainer.get_batch_samples
        timer = self

        def timed(trainer, epoch_iterator, num_batches, device):
            start, cpu = time.perf_counter(), time.process_time()
            out = original(trainer, epoch_iterator, num_batches, device)
            timer.fetch.append(time.perf_counter() - start)
            timer._fetch_cpu = time.process_time() - cpu
            for batch in out[0]:
                timer.shapes.append(tuple(batch["input_ids"].shape))
                mask = batch.get("attention_mask")
                timer.real_tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
            return out

        Trainer.get_batch_samples = timed
        try:
            yield self
        finally:
            Trainer.get_batch_samples = original

    def summary(self) -> dict:
        steps = [f + c for f, c in zip(self.fetch, self.compute)]
        later = steps[1:] if len(steps) > 1 else steps  # the first step also allocates and picks kernels
        later_samples = sum(s[0] for s in (self.shapes[1:] if len(steps) > 1 else self.shapes))
        return {
            "timed_seconds": float(sum(steps)),
            "samples_per_s": later_samples / sum(later) if later else None,
            "samples_per_s_all_steps": sum(s[0] for s in self.shapes) / sum(steps) if steps else None,
            "real_tokens_per_s": (sum(self.real_tokens[1:]) if len(steps) > 1 else sum(self.real_tokens)) / sum(later)
            if later else None,
            "steps_timed": len(steps),
            "step_seconds_median": float(np.median(steps)) if steps else None,
            "step_seconds_after_first": float(np.mean(steps[1:])) if len(steps) > 1 else None,
            "fetch_seconds": float(sum(self.fetch)),
            "cpu_seconds": float(sum(self.cpu)),
            "samples": int(sum(s[0] for s in self.shapes)),
            "padded_tokens": int(sum(s[0] * s[1] for s in self.shapes)),
            "real_tokens": int(sum(self.real_tokens)),
            "mean_padded_length": float(np.mean([s[1] for s in self.shapes])) if self.shapes else None,
            "step_seconds": [round(s, 4) for s in steps],
            "step_cpu_seconds": [round(s, 4) for s in self.cpu],
            "padded_lengths": [s[1] for s in self.shapes],
        }


def hold_frozen_linear_weights_in_bf16(model: torch.nn.Module) -> int:
    """Only the frozen nn.Linear weights in bf16: textlora's own hold_frozen_weights_in_bf16 since
    2026-11-28 (it held every frozen weight before; `textlora` in results written before then)."""
    from textlora.precision import hold_frozen_weights_in_bf16

    return hold_frozen_weights_in_bf16(model)


def hold_every_frozen_weight_in_bf16(model: torch.nn.Module) -> None:
    """What textlora did before 2026-11-28, kept for --numerics: LayerNorm and embedding weights
    in bf16 too, which makes the LayerNorm outputs (the residual stream) bf16 under autocast."""
    for param in model.parameters():
        if not param.requires_grad and param.dtype == torch.float32:
            param.data = param.data.to(torch.bfloat16)


@contextlib.contextmanager
def switched_off(variant: str, max_length: int):
    """The levers that have no config key, switched off inside the benchmark process only."""
    if variant == "no_dynamic_padding":
        import transformers

        original = transformers.DataCollatorWithPadding

        class PadToMaxLength(original):
            def __init__(self, tokenizer, *args, **kwargs):
                super().__init__(tokenizer, padding="max_length", max_length=max_length)

        transformers.DataCollatorWithPadding = PadToMaxLength  # train_model imports it at call time
        try:
            yield
        finally:
            transformers.DataCollatorWithPadding = original
    elif variant == "sorted_length_groups":
        from textlora.train import ShuffledLengthGroupedSampler

        ShuffledLengthGroupedSampler.shuffle_batches = False
        try:
            yield
        finally:
            ShuffledLengthGroupedSampler.shuffle_batches = True
    elif variant in ("no_bf16_frozen", "bf16_linear_only"):
        import textlora.train

        original = textlora.train.hold_frozen_weights_in_bf16
        textlora.train.hold_frozen_weights_in_bf16 = (lambda model: 0) if variant == "no_bf16_frozen" \
            else hold_frozen_linear_weights_in_bf16
        try:
            yield
        finally:
            textlora.train.hold_frozen_weights_in_bf16 = original
    else:
        yield


# --------------------------------------------------------------------------- scoring


def predict(model, tokenizer, test: pd.DataFrame, max_length: int, autocast: bool = False) -> np.ndarray:
    """Predicted labels of the held-out rows (head truncation, as in training)."""
    from textlora.config import ModelConfig
    from textlora.encode import encode_texts
    from textlora.evaluate import predict_probs

    encoded = encode_texts(tokenizer, list(test.text), ModelConfig(max_length=max_length, truncation="head"))
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with context:
        return predict_probs(model, encoded, tokenizer, batch_size=64).argmax(1)


def trained_tensors(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}


def shipped_predictions(source: str, tensors: dict[str, torch.Tensor], tokenizer, test: pd.DataFrame,
                        max_length: int, seed: int) -> np.ndarray:
    """As textlora ships it: a fresh fp32 base, the trained tensors loaded, merged in fp32, scored in fp32."""
    from textlora.models import build_model

    fresh, _ = build_model(textlora_config(source, max_length, seed, 1, 16, 1e-3, {}), source, ["0", "1"], tokenizer)
    params = dict(fresh.named_parameters())
    missing = set(tensors) - set(params)
    if missing:
        raise RuntimeError(f"trained tensors without a place in the fresh model: {sorted(missing)[:5]}")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)
    return predict(fresh.merge_and_unload().float().eval(), tokenizer, test, max_length)


# --------------------------------------------------------------------------- the runs


def reference_run(source: str, train: pd.DataFrame, max_length: int, seed: int, steps: int, batch_size: int,
                  lr: float, work: Path):
    """The seeds' recipe, as a user writes it from the Trainer tutorial (no logging, evaluation or saving)."""
    import datasets
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=LORA["r"], lora_alpha=LORA["alpha"],
                                             lora_dropout=LORA["dropout"], target_modules=LORA["target_modules"],
                                             modules_to_save=list(LORA["modules_to_save"])))  # peft appends to it
    dataset = datasets.Dataset.from_pandas(train[["text", "label"]]).map(
        lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=max_length), batched=True)
    args = TrainingArguments(output_dir=str(work), max_steps=steps, per_device_train_batch_size=batch_size,
                             learning_rate=lr, weight_decay=0.01, save_strategy="no", report_to=[],
                             disable_tqdm=True, seed=seed, use_cpu=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints the end-of-training metrics dict
    timer = LoopTimer()
    trainer.add_callback(timer.callback())
    with timer.active():
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    train_loss = next((e["train_loss"] for e in reversed(trainer.state.log_history) if "train_loss" in e), None)
    return model, tokenizer, timer, wall, train_loss, "fp32"


def textlora_config(source: str, max_length: int, seed: int, steps: int, batch_size: int, lr: float, overrides: dict):
    from textlora.config import config_from_dict

    raw = {
        "seed": seed, "model": {"name": source, "max_length": max_length, "truncation": "head"},
        "lora": {k: list(v) if isinstance(v, list) else v for k, v in LORA.items()},  # peft appends to lists
        # The reference's optimisation settings (weight decay 0.01, no warm-up, linear decay): only the levers differ.
        "train": {"epochs": 1, "batch_size": batch_size, "learning_rate": lr, "weight_decay": 0.01,
                  "warmup_ratio": 0.0},
    }
    for key, value in overrides.items():
        section, name = key.split(".")
        raw[section][name] = value
    return config_from_dict(raw)


def textlora_defaults() -> dict:
    """The levers as textlora's config sets them when a recipe says nothing: what `textlora` means here."""
    from textlora.config import ModelConfig, TrainConfig

    return {"train.group_by_length": TrainConfig().group_by_length, "model.attention_dropout":
            ModelConfig().attention_dropout, "train.precision": TrainConfig().precision}


VARIANT_CONFIG = {
    "textlora": {}, "no_dynamic_padding": {}, "no_bf16_frozen": {}, "bf16_linear_only": {}, "sorted_length_groups": {},
    "no_length_grouping": {"train.group_by_length": False},
    "model_attention_dropout": {"model.attention_dropout": None},
    "fp32": {"train.precision": "fp32"},
}


def textlora_run(variant: str, source: str, train: pd.DataFrame, max_length: int, seed: int, steps: int,
                 batch_size: int, lr: float, work: Path):
    from textlora.encode import to_dataset
    from textlora.models import build_model, load_tokenizer
    from textlora.train import train_model

    cfg = textlora_config(source, max_length, seed, steps, batch_size, lr, VARIANT_CONFIG[variant])
    tokenizer = load_tokenizer(source)
    model, _ = build_model(cfg, source, ["0", "1"], tokenizer)
    train_set = to_dataset(train.text, train.label, tokenizer, cfg.model)
    # train_model evaluates (eval_steps=steps: once, at the last step) and checkpoints there, outside the
    # timed region; 8 rows keep that short.
    tiny_eval = train_set.select(range(min(8, len(train_set))))
    timer = LoopTimer()
    with switched_off(variant, max_length), timer.active():
        start = time.perf_counter()
        result = train_model(cfg, model, tokenizer, train_set, tiny_eval, ["0", "1"], work, quiet=True,
                             max_steps=steps, eval_steps=steps, callbacks=(timer.callback(),), select_metric="loss")
        wall = time.perf_counter() - start
    if result.selected_step != steps:
        raise RuntimeError(f"train_model restored step {result.selected_step}, not the last step {steps}")
    train_loss = result.epochs[-1].get("train_loss") if result.epochs else None
    return model, tokenizer, timer, wall, train_loss, result.precision


def one_run(variant: str, source: str, train: pd.DataFrame, test: pd.DataFrame, max_length: int, seed: int,
            args) -> dict:
    with tempfile.TemporaryDirectory() as work:
        if variant == "reference":
            model, tokenizer, timer, wall, loss, precision = reference_run(
                source, train, max_length, seed, args.steps, args.batch_size, args.lr, Path(work))
        else:
            model, tokenizer, timer, wall, loss, precision = textlora_run(
                variant, source, train, max_length, seed, args.steps, args.batch_size, args.lr, Path(work))
    timing = timer.summary()
    started = time.perf_counter()
    bf16_base = any(p.dtype == torch.bfloat16 for p in model.parameters())
    accuracy, agreement = {}, {}
    if len(test):
        labels = test.label.to_numpy()
        shipped = shipped_predictions(source, trained_tensors(model), tokenizer, test, max_length, seed)
        accuracy["shipped_fp32"] = float((shipped == labels).mean())
        accuracy["predicted_positive_share"] = float(shipped.mean())  # a collapsed model predicts one class
        if args.diagnose and bf16_base:
            for mode, predicted in (
                    ("as_trained_autocast", predict(model, tokenizer, test, max_length, autocast=True)),
                    ("bf16_merge_then_fp32", predict(model.merge_and_unload().float(), tokenizer, test, max_length))):
                accuracy[mode] = float((predicted == labels).mean())
                agreement[mode] = float((predicted == shipped).mean())
    return {
        "variant": variant, "max_length": max_length, "seed": seed, "precision": precision,
        "frozen_base_dtype": "bf16" if bf16_base else "fp32",
        **timing,
        "wall_seconds_whole_call": wall,
        "mean_train_loss": loss,
        "accuracy": accuracy,
        **({"label_agreement_with_shipped": agreement} if agreement else {}),
        "scoring_seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- numerics


def numerics(source: str, test: pd.DataFrame, max_length: int, seed: int) -> dict:
    """One forward pass of the untrained LoRA model on the same 32 held-out texts in the three precision
    set-ups, against fp32: where bf16 changes the numbers before any training (residual stream dtype,
    LayerNorm output dtype, pooled output and logits)."""
    import copy

    from textlora.config import ModelConfig
    from textlora.encode import encode_texts
    from textlora.models import build_model, load_tokenizer

    tokenizer = load_tokenizer(source)
    model, _ = build_model(textlora_config(source, max_length, seed, 1, 16, 1e-3, {}), source, ["0", "1"], tokenizer)
    model.eval()
    encoded = encode_texts(tokenizer, list(test.text[:32]), ModelConfig(max_length=max_length, truncation="head"))
    batch = tokenizer.pad([{k: encoded[k][i] for k in encoded} for i in range(32)], return_tensors="pt")
    held = copy.deepcopy(model)
    hold_every_frozen_weight_in_bf16(held)
    linear_only = copy.deepcopy(model)
    hold_frozen_linear_weights_in_bf16(linear_only)
    out = {}
    captured = {}

    def grab(name):
        def hook(module, inputs, output):
            captured[name] = output[0] if isinstance(output, tuple) else output
        return hook

    for setup, net, autocast in (("fp32", model, False), ("autocast_fp32_base", model, True),
                                 ("autocast_bf16_base", held, True), ("autocast_bf16_linear_only", linear_only, True)):
        handles = [m.register_forward_hook(grab(n)) for n, m in net.named_modules()
                   if n.endswith("encoder.layer.5.output.LayerNorm") or n.endswith("embeddings.LayerNorm")]
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with torch.no_grad(), context:
            logits = net(**batch).logits
        for h in handles:
            h.remove()
        named = {("embeddings" if "embeddings" in k else "last_layer") + "_layernorm": v for k, v in captured.items()}
        out[setup] = {"logits": logits.float(), **named,
                      "dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in named.items()}}
        captured = {}
    mask = batch["attention_mask"].bool()
    report = {}
    for setup in ("autocast_fp32_base", "autocast_bf16_base", "autocast_bf16_linear_only"):
        row = {"dtypes": out[setup]["dtypes"]}
        for key in out["fp32"]:
            if key == "dtypes":
                continue
            ref, got = out["fp32"][key].float(), out[setup][key].float()
            if ref.dim() == 3:
                ref, got = ref[mask], got[mask]
            row[f"{key}_relative_error"] = float((got - ref).norm() / ref.norm())
        row["label_agreement_untrained"] = float((out[setup]["logits"].argmax(1) == out["fp32"]["logits"].argmax(1))
                                                 .float().mean())
        report[setup] = row
    report["fp32_dtypes"] = out["fp32"]["dtypes"]
    return report


# --------------------------------------------------------------------------- summary


def mean_sd(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(np.mean(values)), "sd": float(statistics.stdev(values)) if len(values) > 1 else None,
            "n": len(values), "min": float(min(values)), "max": float(max(values))}


def paired_difference(runs: list[dict], against: list[dict]) -> dict | None:
    """Accuracy of `runs` minus `against`, seed by seed, in points (common.paired_seed_differences)."""
    other = {r["seed"]: r["accuracy"].get("shipped_fp32") for r in against}
    return paired_seed_differences({r["seed"]: 100 * (r["accuracy"]["shipped_fp32"] - other[r["seed"]]) for r in runs
                                    if other.get(r["seed"]) is not None
                                    and r["accuracy"].get("shipped_fp32") is not None})


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for max_length in sorted({r["max_length"] for r in runs}):
        at = [r for r in runs if r["max_length"] == max_length]
        ref = [r for r in at if r["variant"] == "reference"]
        ref_speed = mean_sd([r["samples_per_s"] for r in ref])
        ref_acc = mean_sd([r["accuracy"].get("shipped_fp32") for r in ref])
        for variant in VARIANTS + EXTRA_VARIANTS:
            mine = [r for r in at if r["variant"] == variant]
            if not mine:
                continue
            acc = mean_sd([r["accuracy"].get("shipped_fp32") for r in mine])
            row = {"max_length": max_length, "variant": variant, "seeds": sorted(r["seed"] for r in mine),
                   "lever_off": LEVER_OF.get(variant), "precision": mine[0]["precision"],
                   "samples_per_s": mean_sd([r["samples_per_s"] for r in mine]),
                   "real_tokens_per_s": mean_sd([r["real_tokens_per_s"] for r in mine]),
                   "step_seconds_median": mean_sd([r["step_seconds_median"] for r in mine]),
                   "accuracy_shipped_fp32": acc,
                   "mean_train_loss": mean_sd([r["mean_train_loss"] for r in mine])}
            for extra in ("as_trained_autocast", "bf16_merge_then_fp32", "predicted_positive_share"):
                values = [r["accuracy"].get(extra) for r in mine if extra in r["accuracy"]]
                if values:
                    row[f"accuracy_{extra}"] = mean_sd(values)
            if ref_speed["mean"] and row["samples_per_s"]["mean"]:
                row["speedup_vs_reference"] = row["samples_per_s"]["mean"] / ref_speed["mean"]
            if variant != "reference" and ref_acc["n"] >= 2 and acc["mean"] is not None:
                # The reference's seed spread: its range over seeds (and mean +- 2 sd beside it).
                row["accuracy_within_reference_range"] = ref_acc["min"] <= acc["mean"] <= ref_acc["max"]
                row["accuracy_minus_reference_points"] = 100 * (acc["mean"] - ref_acc["mean"])
                paired = paired_difference(mine, ref)
                if paired:
                    row["paired_difference_points"] = paired
            if variant not in ("reference", "textlora"):
                # The lever alone: this variant against textlora with every lever on, seed by seed.
                paired = paired_difference(mine, [r for r in at if r["variant"] == "textlora"])
                if paired:
                    row["paired_difference_vs_textlora_points"] = paired
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- main


def parse_grid(args) -> list[tuple[int, list[str]]]:
    """(max_length, variants) pairs: --at LENGTH:V1,V2 (repeatable; `all` = every lever variant, e.g.
    256:all,bf16_linear_only), else --max-length x --variants."""
    if not args.at:
        return [(length, list(args.variants)) for length in args.max_length]
    grid = []
    for spec in args.at:
        length, _, names = spec.partition(":")
        variants = []
        for name in (names or "all").split(","):
            variants += [v for v in (VARIANTS if name == "all" else [name]) if v not in variants]
        unknown = [v for v in variants if v not in VARIANTS + EXTRA_VARIANTS]
        if unknown:
            raise SystemExit(f"error: unknown variant(s) {unknown}; choose from {', '.join(VARIANTS + EXTRA_VARIANTS)}")
        grid.append((int(length), variants))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS + EXTRA_VARIANTS)
    parser.add_argument("--max-length", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--at", action="append", metavar="LENGTH:VARIANTS",
                        help="a length and its variants, e.g. --at 256:all --at 512:reference,textlora,fp32 "
                             "(replaces --max-length and --variants)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46],
                        help="training seeds (initialisation, dropout, batch order); the rows stay the same")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of every run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-rows", type=int, default=None,
                        help="training rows (default steps x batch size: one pass, every row once)")
    parser.add_argument("--eval-rows", type=int, default=500,
                        help="held-out IMDB test reviews scored after training (0: speed only, no scoring)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--data-seed", type=int, default=0, help="which training and held-out rows are sampled")
    parser.add_argument("--diagnose", action="store_true",
                        help="also score bf16-base variants as trained (autocast) and merged in bf16")
    parser.add_argument("--numerics", action="store_true",
                        help="compare one forward pass of the three precision set-ups before training")
    parser.add_argument("--resume", action="store_true", help="keep the runs --out already holds and skip them")
    parser.add_argument("--note", default=None,
                        help="a sentence kept in the results (e.g. that other work shared the CPU: the speeds of "
                             "such a run are not speed results; load_average_at_start of each run says how much)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "train_ablation.json")
    args = parser.parse_args()

    import transformers

    from textlora.models import resolve_model_source
    from textlora.precision import resolve_precision

    transformers.logging.set_verbosity_error()
    source = resolve_model_source("packaged:minilm")
    grid = parse_grid(args)
    train_rows = args.train_rows or args.steps * args.batch_size
    train, test = load_rows(args.data, train_rows, args.eval_rows, args.data_seed)
    native_bf16 = resolve_precision("auto") == "bf16"
    runs: list[dict] = []
    import shlex

    commands = [" ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])]
    if args.resume and args.out.is_file():
        previous = json.loads(args.out.read_text())
        runs = previous.get("runs", [])
        commands = previous.get("commands", [previous.get("command")]) + commands
        print(f"resuming: {len(runs)} runs already in {args.out}", flush=True)
    done = {(r["variant"], r["max_length"], r["seed"]) for r in runs}
    settings = {"steps": args.steps, "batch_size": args.batch_size, "train_rows": train_rows,
                "eval_rows": len(test), "lr": args.lr, "optimizer": "AdamW, weight decay 0.01, linear decay, no warm-up",
                "lora": LORA, "truncation": "head", "data_seed": args.data_seed,
                "grid": [{"max_length": length, "variants": variants} for length, variants in grid],
                "seeds": args.seeds, "native_bf16": native_bf16,
                "timed_region": "batch fetch + on_step_begin..on_step_end of every optimizer step; "
                                "no logging, evaluation or checkpoint inside; samples_per_s leaves the first "
                                "step out (allocation, kernel choice), samples_per_s_all_steps keeps it",
                "accuracy": "trained tensors on a fresh fp32 base, merged in fp32, scored in fp32 (as shipped)",
                "textlora_defaults": textlora_defaults()}
    extra: dict = {}
    if args.numerics:
        probe = test if len(test) >= 32 else load_rows(args.data, 1, 32, args.data_seed)[1]
        extra["numerics_before_training"] = {str(length): numerics(source, probe, length, args.seeds[0])
                                             for length, _ in grid}
        print(json.dumps(extra["numerics_before_training"], indent=1), flush=True)

    def save(complete: bool) -> None:
        # settings.grid and seeds are the last command's; a --resume that added seeds for some variants
        # leaves runs of others: runs_by_variant says what the file holds (the summary's seeds, up front).
        summary = summarise(runs)
        held = {f"{row['max_length']}:{row['variant']}": row["seeds"] for row in summary}
        write_result(args.out, {"benchmark": "train_ablation", "complete": complete, "commands": commands,
                                **({"note": args.note} if args.note else {}),
                                "settings": settings, "runs_by_variant": held,
                                **extra, "summary": summary, "runs": runs})

    for index, seed in enumerate(args.seeds):
        for max_length, variants in grid:
            shift = index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                if (variant, max_length, seed) in done:
                    continue
                load = [round(x, 2) for x in os.getloadavg()]
                row = {**one_run(variant, source, train, test, max_length, seed, args), "load_average_at_start": load}
                runs.append(row)
                print(f"seed {seed} len {max_length} {variant:24s} {row['samples_per_s']:6.2f} samples/s "
                      f"(median step {row['step_seconds_median']:.2f} s, mean padded length "
                      f"{row['mean_padded_length']:.0f}) acc {row['accuracy']}", flush=True)
                save(complete=False)
    save(complete=True)
    for row in summarise(runs):
        acc = row["accuracy_shipped_fp32"]
        print(f"{row['max_length']:4d} {row['variant']:24s} {row['samples_per_s']['mean']:6.2f} samples/s "
              f"x{row.get('speedup_vs_reference', float('nan')):.2f}"
              + (f"  acc {acc['mean']:.3f}" if acc["mean"] is not None else "")
              + (f" +- {acc['sd']:.3f}" if acc["sd"] is not None else ""))


if __name__ == "__main__":
    main()
