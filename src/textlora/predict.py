"""Prediction from a run folder: label, confidence and every class probability.

What is predicted is what the run ships (ship.json): the fine-tuned model, its ensemble with a
classical row, or a classical row alone, with the fine-tuned logits divided by the temperature
fitted on the validation rows (calibration.json) unless `calibrated=False`.

    from textlora.predict import Predictor
    predictor = Predictor.from_run("runs/demo")
    predictor.predict(["Great film!"])[0].probabilities  # {"negative": 0.02, "positive": 0.98}

The adapter is merged into the base weights once at load time (peft
merge_and_unload), so inference runs a plain transformers model. With
precision "bf16" (or "auto" on hardware that runs bf16 natively: CUDA,
AVX512-BF16/AMX CPUs) the loaded model is cast to bf16 for speed; the
default "fp32" gives exactly the probabilities the run's metrics came from.
With backend "onnx" the model is the run's ONNX export (`textlora export RUN
--onnx DIR`, fp32 or int8) run by onnxruntime; the run folder still gives the
preprocessing, temperature and what ships (onnxexport.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from textlora.config import ModelConfig
from textlora.data import clean_html
from textlora.encode import encode
from textlora.errors import TextloraError
from textlora.runs import CALIBRATION_FILE, CLASSICAL_DIR, RunDir, base_signature, open_run


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelSetPrediction:
    """task: multi_label: every label whose probability reaches its threshold (tuned on the validation
    rows), and every label's probability."""

    labels: list[str]
    probabilities: dict[str, float]
    thresholds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValuePrediction:
    """task: regression: the predicted number, and the data.label_bins range it falls in (the nearest
    one between two ranges) when the run has bins."""

    value: float
    bin: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Precision lives in precision.py (inference never imports the training code); these names stay
# importable from here for callers of the predict API. Imported on use: torch loads only when a
# model does, so `textlora predict --help` stays fast.
def inference_precision(precision: str) -> str:
    from textlora.precision import resolve_precision

    return resolve_precision(precision)


def cast_for_inference(model, precision: str):
    from textlora.precision import cast_for_inference as cast

    return cast(model, precision)


def _load_failed(what: Path, err: Exception) -> TextloraError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    return TextloraError(f"could not load {what} ({first}); the file is corrupt or truncated, re-train or restore the run")


def load_run_model(run: RunDir, base_model: str | None = None, merge: bool = True,
                   trust_remote_code: bool = False, precision: str = "fp32"):
    """The run's classifier (adapter merged when `merge`), in `precision`.

    A classification-head run gives a plain transformers model; a label-word
    run gives a LabelWordClassifier around its language model. The run's
    own weights are read from safetensors only (a pickled file can run code
    when loaded), and a run trained with trust_remote_code loads only when
    the caller trusts that code too.
    """
    from transformers import AutoConfig

    from textlora.models import auto_model_class, load_pretrained, read_model_config, resolve_model_source

    trust = bool(run.config().get("model", {}).get("trust_remote_code", False))
    if trust and not trust_remote_code:
        raise TextloraError(
            f"run {str(run.path)!r} was trained with trust_remote_code (its model ships code); "
            "pass --trust-remote-code if you trust that code"
        )
    auto_class = auto_model_class(run.info.get("objective"))
    weights = "model.safetensors" if run.info["artifact"] == "model" else "adapter_model.safetensors"
    if not any(run.artifact.glob(weights.replace(".", "*.", 1))):  # model.safetensors may be sharded
        raise TextloraError(
            f"{run.artifact} has no {weights}; textlora reads safetensors only (pickled weights can run code), "
            "re-train or re-save the run"
        )
    if run.info["artifact"] == "model":
        try:
            model = auto_class.from_pretrained(str(run.artifact), trust_remote_code=trust, use_safetensors=True)
        except Exception as err:  # safetensors raises several types on a damaged file
            raise _load_failed(run.artifact, err) from None
        return _as_classifier(run, cast_for_inference(model, precision))
    from peft import PeftModel

    source = resolve_model_source(base_model) if base_model else run.info["base_model_source"]
    if base_model is None and not Path(source).exists() and run.info["base_model"] != source:
        source = resolve_model_source(run.info["base_model"])  # e.g. packaged: on another machine
    try:
        config = AutoConfig.from_pretrained(str(run.artifact))
    except (OSError, ValueError) as err:
        raise _load_failed(run.artifact, err) from None
    base_config = read_model_config(source, trust)  # a folder, hub id or GGUF file
    recorded = run.info.get("base_signature")
    if recorded and base_signature(base_config) != recorded:
        raise TextloraError(
            f"base model {base_model or source!r} differs from the one this adapter was trained on "
            f"({run.info['base_model']!r}: {recorded}); pass that model with --model"
        )
    model = load_pretrained(auto_class, source, config=config, trust_remote_code=trust)
    try:
        model = PeftModel.from_pretrained(model, str(run.artifact))
    except Exception as err:
        raise _load_failed(run.artifact / "adapter_model.safetensors", err) from None
    return _as_classifier(run, cast_for_inference(model.merge_and_unload() if merge else model, precision))


def _as_classifier(run: RunDir, model):
    from textlora.models import LABEL_WORD_OBJECTIVES

    if run.info.get("objective") not in LABEL_WORD_OBJECTIVES:
        return model
    from textlora.labelwords import LabelWordClassifier

    return LabelWordClassifier(model, run.info["prompt"]["targets"])


COMPONENTS = ("shipped", "finetuned")
BACKENDS = ("torch", "onnx")


def resolve_backend(backend: str | None, onnx: str | Path | None) -> str:
    """--backend as given, else onnx when --onnx names a folder, else torch."""
    return backend or ("onnx" if onnx is not None else "torch")


def check_backend(backend: str, onnx: str | Path | None, precision: str = "fp32") -> None:
    """One line per misuse of --backend / --onnx, before anything loads."""
    if backend not in BACKENDS:
        raise TextloraError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch" and onnx is not None:
        raise TextloraError("--onnx is read by the onnx backend only; add --backend onnx")
    if backend == "onnx" and onnx is None:
        raise TextloraError("--backend onnx needs --onnx DIR, a folder written by `textlora export RUN --onnx DIR`")
    if backend == "onnx" and precision != "fp32":
        raise TextloraError(f"--precision {precision} applies to the torch backend; an ONNX model runs in the "
                            "precision it was exported in (fp32, or int8 with --quantize int8)")


class Predictor:
    """What a run ships, with its tokenizer, label names and text preprocessing.

    `model` is the fine-tuned classifier (None when a classical row ships alone); its logits are
    divided by `temperature`; with a `classical` model the result is
    weight x fine-tuned + (1 - weight) x classical probabilities (weight 0: the classical row alone).
    task: multi_label: sigmoid probabilities and per-label `thresholds`; task: regression: numbers
    (the same blend), with `bins` naming their ranges.
    """

    def __init__(self, model, tokenizer, label_names: list[str], model_cfg: ModelConfig,
                 clean: bool = False, batch_size: int = 64, prompt=None, temperature: float = 1.0,
                 classical=None, weight: float = 1.0, task: str = "classification",
                 thresholds: Sequence[float] | None = None, bins: dict[str, list] | None = None):
        self.model = model.eval() if model is not None else None
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.model_cfg = model_cfg
        self.clean = clean
        self.batch_size = batch_size
        self.prompt = prompt
        """labelwords.Prompt of a label-word model: each text is classified inside it."""
        self.temperature = temperature
        self.classical = classical
        self.weight = weight if classical is not None else 1.0
        self.task = task
        self.thresholds = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self.bins = bins

    @classmethod
    def from_run(cls, path: str | Path, base_model: str | None = None, batch_size: int = 64,
                 trust_remote_code: bool = False, precision: str = "fp32", calibrated: bool = True,
                 component: str = "shipped", backend: str | None = None,
                 onnx: str | Path | None = None) -> "Predictor":
        """`precision`: fp32 (default: the probabilities the run's metrics came from), bf16, or auto.
        `calibrated`: divide the fine-tuned logits by the run's temperature (default).
        `component`: shipped (what ship.json says, default) or finetuned (the adapted model alone).
        `backend`: torch, or onnx: the run's ONNX export in the folder `onnx` (the default when it is given)."""
        inference_precision(precision)  # a bad value fails before minutes of loading
        if component not in COMPONENTS:
            raise TextloraError(f"unknown component {component!r}; choose one of {', '.join(COMPONENTS)}")
        backend = resolve_backend(backend, onnx)
        check_backend(backend, onnx, precision)
        run = open_run(path)
        model = None
        if backend == "onnx":
            from textlora.onnxexport import load_onnx_classifier, read_info

            # Checked even when a classical row ships alone: a wrong folder should not pass unnoticed.
            read_info(onnx, run)
            if component == "finetuned" or run.needs_neural_model:
                model = load_onnx_classifier(onnx)
        elif component == "finetuned" or run.needs_neural_model:
            model = load_run_model(run, base_model, trust_remote_code=trust_remote_code, precision=precision)
        return cls.for_model(run, model, batch_size, calibrated, component)

    @classmethod
    def for_model(cls, run: RunDir, model, batch_size: int = 64, calibrated: bool = True,
                  component: str = "shipped") -> "Predictor":
        """The run's tokenizer, labels, preprocessing and shipped combination around an already loaded
        model (serve.py shares one base model between the predictors of several adapters)."""
        from textlora.models import load_tokenizer

        config = run.config()
        model_cfg = ModelConfig(**{k: v for k, v in config.get("model", {}).items() if k in ModelConfig.__dataclass_fields__})
        if run.info.get("truncation"):  # truncation: auto, as the run resolved it
            model_cfg = model_cfg.with_truncation(run.info["truncation"])
        tokenizer = load_tokenizer(str(run.path / "tokenizer"))
        prompt = None
        if run.info.get("prompt"):
            from textlora.labelwords import Prompt

            prompt = Prompt.from_dict(run.info["prompt"])
        ship = run.ship_plan
        if component == "finetuned":
            ship = {"kind": "finetuned"}
        temperature = float((run.json_file(CALIBRATION_FILE) or {}).get("temperature", 1.0)) if calibrated else 1.0
        classical, weight = None, 1.0
        if ship["kind"] != "finetuned":
            from textlora.classical import load_classical

            classical = load_classical(run.path / CLASSICAL_DIR / ship["partner"])
            weight = float(ship["weight"]) if ship["kind"] == "ensemble" else 0.0
        if weight == 0.0:
            model = None  # a classical row ships alone: the transformer is not needed
        task, thresholds = run.task, None
        if task == "multi_label":  # the thresholds of what is predicted, tuned on the validation rows
            chosen = run.task_file["thresholds"][ship["kind"]]
            thresholds = [chosen[name] for name in run.label_names]
        return cls(model, tokenizer, run.label_names, model_cfg,
                   clean=bool(config.get("data", {}).get("clean_html")), batch_size=batch_size, prompt=prompt,
                   temperature=temperature, classical=classical, weight=weight, task=task, thresholds=thresholds,
                   bins=run.task_file.get("bins") if task == "regression" else None)

    def prepare(self, texts: Sequence[str]) -> list[str]:
        texts = [str(t) for t in texts]
        return [clean_html(t) for t in texts] if self.clean else texts

    def predict_probs(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Class probabilities (n, K); task: multi_label: each label's probability (n, K); task:
        regression: the predicted numbers (n,)."""
        from textlora.evaluate import predict_logits, predict_probs
        from textlora.ship import blend

        if len(texts) == 0:
            return np.zeros(0) if self.task == "regression" else np.zeros((0, len(self.label_names)))
        prepared = self.prepare(texts)
        probs = None
        if self.model is not None:
            encoded = encode(self.tokenizer, prepared, self.model_cfg, self.prompt)
            if self.task == "classification":
                probs = predict_probs(self.model, encoded, self.tokenizer, self.batch_size, progress, self.temperature)
            else:
                from textlora.tasks import outputs_of

                probs = outputs_of(self.task, predict_logits(self.model, encoded, self.tokenizer, self.batch_size,
                                                             progress))
        if self.classical is not None:
            classical = self.classical.predict_outputs(prepared)
            probs = classical if probs is None else blend(probs, classical, self.weight)
        return probs

    def predict(self, texts: Sequence[str], progress: bool = False) -> list[Prediction]:
        """One Prediction per text (LabelSetPrediction for task: multi_label, ValuePrediction for regression)."""
        probs = self.predict_probs(texts, progress)
        if self.task == "multi_label":
            from textlora.multilabel import predict_sets

            chosen = predict_sets(probs, self.thresholds)
            limits = {name: float(t) for name, t in zip(self.label_names, self.thresholds)}
            return [LabelSetPrediction(labels=[n for n, keep in zip(self.label_names, row_chosen) if keep],
                                       probabilities={n: float(p) for n, p in zip(self.label_names, row)},
                                       thresholds=limits)
                    for row, row_chosen in zip(probs, chosen)]
        if self.task == "regression":
            from textlora.regression import value_bins

            bins = value_bins(probs, self.bins) if self.bins else [None] * len(probs)
            return [ValuePrediction(value=float(v), bin=b) for v, b in zip(probs, bins)]
        out = []
        for row in probs:
            best = int(row.argmax())
            out.append(Prediction(
                label=self.label_names[best],
                confidence=float(row[best]),
                probabilities={name: float(p) for name, p in zip(self.label_names, row)},
            ))
        return out


# --------------------------------------------------------------------------- the `predict` command


def _read_input_texts(path: str, column: str) -> list[str]:
    from textlora.data import read_table

    file = Path(path)
    if not file.is_file():
        raise TextloraError(f"input file {path!r} does not exist; check the path")
    if file.suffix.lower() == ".txt":
        return [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    frame = read_table(file)
    if column not in frame.columns:
        raise TextloraError(
            f"text column {column!r} not in {path}; pass --text-column, columns that exist: {', '.join(map(str, frame.columns))}"
        )
    # A missing cell (None, or NaN: pandas reads an empty CSV field as NaN) is an empty text, not "nan".
    return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in frame[column].tolist()]


def cmd_predict(args) -> int:
    from textlora.predict import Predictor, check_backend, resolve_backend

    backend = resolve_backend(args.backend, args.onnx)
    check_backend(backend, args.onnx, args.precision)  # before reading any input
    texts = list(args.texts)
    where = [f"text argument {i}" for i in range(1, len(texts) + 1)]
    if args.input:
        texts += _read_input_texts(args.input, args.text_column)
        where += [f"row {i} of {args.input}" for i in range(1, len(texts) - len(where) + 1)]
    if not texts:
        raise TextloraError("no text to classify; give texts as arguments or --input FILE")
    empty = [w for w, t in zip(where, texts) if not t.strip()]
    if empty:  # the model would still answer, with a confident label for nothing
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise TextloraError(f"{empty[0]} is empty{more}; give only texts with words in them")
    if args.output and Path(args.output).exists() and not args.overwrite:
        raise TextloraError(f"output {args.output!r} already exists; pass --overwrite or choose another path")
    predictor = Predictor.from_run(args.run_dir, base_model=args.model, batch_size=args.batch_size,
                                   trust_remote_code=args.trust_remote_code, precision=args.precision,
                                   backend=backend, onnx=args.onnx)
    predictions = predictor.predict(texts, progress=len(texts) > 256 and not args.quiet)
    if args.output:
        _write_predictions(Path(args.output), texts, predictions, predictor.label_names)
        print(f"wrote {len(predictions)} predictions to {args.output}")
    elif args.json:
        print(json.dumps([{"text": t, **p.as_dict()} for t, p in zip(texts, predictions)], indent=2))
    else:
        for text, p in zip(texts, predictions):
            shown = text if len(text) <= 100 else text[:97] + "..."
            print(f"Text: {shown}\n{_prediction_lines(p, predictor.label_names)}\n")
    return 0


def _prediction_lines(p, label_names: list[str]) -> str:
    if isinstance(p, LabelSetPrediction):
        probs = " | ".join(f"{name}: {value:.4f} (threshold {p.thresholds[name]:.2f})"
                           for name, value in p.probabilities.items())
        return f"Labels: {', '.join(p.labels) if p.labels else '(none)'}\nProbabilities - {probs}"
    if isinstance(p, ValuePrediction):
        return f"Prediction: {p.value:.4f} ({label_names[0]})" + (f"\nBin: {p.bin}" if p.bin is not None else "")
    probs = " | ".join(f"{name}: {value:.4f}" for name, value in p.probabilities.items())
    return f"Prediction: {p.label}\nConfidence: {p.confidence:.4f}\nProbabilities - {probs}"


def _write_predictions(path: Path, texts, predictions, label_names) -> None:
    import pandas as pd

    if predictions and isinstance(predictions[0], ValuePrediction):  # task: regression
        frame = pd.DataFrame({"text": texts, label_names[0]: [p.value for p in predictions],
                              **({"bin": [p.bin for p in predictions]} if predictions[0].bin is not None else {})})
    elif predictions and isinstance(predictions[0], LabelSetPrediction):  # task: multi_label
        frame = pd.DataFrame({
            "text": texts,
            "labels": ["|".join(p.labels) for p in predictions],
            **{f"prob_{name}": [p.probabilities[name] for p in predictions] for name in label_names},
        })
    else:
        frame = pd.DataFrame({
            "text": texts,
            "label": [p.label for p in predictions],
            "confidence": [p.confidence for p in predictions],
            **{f"prob_{name}": [p.probabilities[name] for p in predictions] for name in label_names},
        })
    temporary = path.with_name(f".{path.name}.partial")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        frame.to_json(temporary, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(temporary, index=False)
    else:
        frame.to_csv(temporary, index=False, sep="\t" if suffix == ".tsv" else ",")
    temporary.replace(path)


def register_cli(subparsers) -> None:
    from textlora.cli import add_backend_arguments
    from textlora.config import PRECISIONS

    predict = subparsers.add_parser(
        "predict",
        help="classify texts with a trained run",
        description="Print label, confidence and every class probability for each text.",
        epilog='example: textlora predict runs/demo "Great film!" or --input reviews.csv --text-column review --output out.csv',
    )
    predict.add_argument("run_dir", help="a run folder written by `textlora train`")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--input", help="file of texts: csv/tsv/jsonl/parquet (with --text-column) or .txt (one per line)")
    predict.add_argument("--text-column", default="text", help="column holding the texts in --input (default: text)")
    predict.add_argument("--output", help="write predictions here (.csv, .tsv, .jsonl, .parquet) instead of printing")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.add_argument("--model", help="base model to load the adapter on, if it moved since training")
    predict.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default 64)")
    predict.add_argument("--precision", choices=PRECISIONS, default="fp32",
                         help="fp32 (default: the probabilities the run's metrics came from), bf16 (faster where "
                              "the hardware runs it natively; probabilities move by bf16 rounding), or auto")
    add_backend_arguments(predict)
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    predict.add_argument("--trust-remote-code", action="store_true",
                         help="needed for a run trained with --trust-remote-code: runs its model's own code")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(func=cmd_predict)

