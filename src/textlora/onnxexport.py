"""ONNX export of a run's fine-tuned classifier, the parity gate it must pass, and the onnxruntime
model that predict / serve / ui run with `--backend onnx`.

    textlora export runs/demo --onnx exported/demo-onnx --quantize int8
    textlora predict runs/demo --backend onnx --onnx exported/demo-onnx "Great film!"

The exported folder is self-contained: model.onnx (inputs input_ids, attention_mask and, where the
tokenizer makes them, token_type_ids, with dynamic batch and sequence axes; output logits), the
tokenizer, labels.json and config.json (id2label), calibration.json (divide the logits by its
temperature before the softmax), task.json for task: multi_label (the sigmoid of each logit against
that label's threshold, ["thresholds"]["finetuned"]) and task: regression (the one output is the
number itself), ship.json + classical/ when the run ships an ensemble or a classical row, onnx.json
(what was exported, from which run, its task) and parity.json (the gate's numbers and measure).

Exporter: torch.onnx.export(dynamo=True), the torch.export-based path and torch's default since 2.9;
it needs onnxscript. The TorchScript exporter (dynamo=False) still runs in torch 2.13 but is
deprecated, and it traces: Python branches on shapes are frozen at the example's shapes without a
word, where torch.export keeps symbolic shapes or refuses. Both gave logits equal to torch to 1e-8
on BERT here; the maintained one wins. optimum-onnx would do the export too, but it pins
transformers 4.x.

One home for the format: this module writes the folder and is the only reader of it (onnx.json is
checked against the run it is used with, so one run's export never serves another's labels).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from textlora.config import LABEL_WORD_OBJECTIVES
from textlora.errors import TextloraError
from textlora.runs import CALIBRATION_FILE, CLASSICAL_DIR, SHIP_FILE, TASK_FILE, RunDir, open_run, write_json

ONNX_FILE = "model.onnx"
INFO_FILE = "onnx.json"
PARITY_FILE = "parity.json"
FORMAT = 1
QUANTIZE = ("int8",)
OPSET = 18  # >= 17 (LayerNormalization as one op); what torch 2.13's dynamo exporter targets
DEFAULT_MAX_DROP = 0.5
"""What the ONNX model may lose against torch fp32 on the run's test rows: accuracy points
(classification), micro F1 points (multi_label), or an MAE increase of this percent of the training
target's standard deviation (regression: 0.5 % of the spread of the target, in its units)."""
DEFAULT_MIN_AGREEMENT = 99.0
"""Percent of the run's test rows on which the ONNX model must give torch fp32's label (multi_label:
the identical label set; regression has no labels and no agreement gate). Accuracy
alone misses a model that flips labels both ways: an int8 export of an untrained MiniLM flipped
12.5 % of the labels and lost no accuracy."""
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXTERNAL_DATA_BYTES = 1_500_000_000  # protobuf's 2 GB limit, with room: larger weights go beside model.onnx
INSTALL_HINT = "pip install 'textlora[onnx]' (onnx, onnxruntime, onnxscript)"


# --------------------------------------------------------------------------- the runtime model


class OnnxClassifier:
    """An onnxruntime session that looks like a transformers classifier to evaluate.predict_logits:
    `model(input_ids=..., attention_mask=..., token_type_ids=...)` returns an output with `.logits`
    (a torch tensor), `eval()` / `train()` / `parameters()` exist and do nothing that matters."""

    training = False

    def __init__(self, session, path: Path):
        self.session = session
        self.path = path
        self.input_names = [i.name for i in session.get_inputs()]

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        defaults = {"attention_mask": torch.ones_like, "token_type_ids": torch.zeros_like}
        feeds = {}
        for name in self.input_names:
            value = given.get(name)
            if value is None:  # a tokenizer that makes no token types: segment 0, as transformers does
                value = defaults[name](input_ids)
            feeds[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
        (logits,) = self.session.run(["logits"], feeds)
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))

    def __call__(self, **inputs):
        return self.forward(**inputs)

    def eval(self) -> "OnnxClassifier":
        return self

    def train(self, mode: bool = True) -> "OnnxClassifier":
        return self

    def parameters(self):  # evaluate.model_device: no parameters means the CPU
        return iter(())


def artifact_digest(run: RunDir) -> str:
    """sha256 of the run's weight files: which trained weights an export was made from."""
    digest = hashlib.sha256()
    for path in sorted(run.artifact.glob("*.safetensors")):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_info(onnx_dir: str | Path, run: RunDir | None = None) -> dict[str, Any]:
    """onnx.json of an exported folder, checked to hold a model.onnx and (given `run`) to come from that run."""
    folder = Path(onnx_dir)
    if not (folder / ONNX_FILE).is_file():
        raise TextloraError(f"no {ONNX_FILE} in {str(folder)!r}; write one with "
                            f"`textlora export RUN --onnx {folder}`")
    try:
        info = json.loads((folder / INFO_FILE).read_text())
    except (OSError, ValueError):
        raise TextloraError(f"{folder / INFO_FILE} is missing or corrupt; export the run again") from None
    if info.get("format") != FORMAT:
        raise TextloraError(f"{folder} is an ONNX export of format {info.get('format')!r}, this textlora reads "
                            f"{FORMAT}; export the run again")
    if run is not None and (info.get("artifact_sha256") != artifact_digest(run)
                            or info.get("label_names") != run.label_names):
        raise TextloraError(f"{str(folder)!r} was exported from run {info.get('run')!r} with other weights than "
                            f"{str(run.path)!r}; export this run with `textlora export {run.path} --onnx DIR`")
    return info


def load_onnx_classifier(onnx_dir: str | Path, run: RunDir | None = None) -> OnnxClassifier:
    """An InferenceSession on the exported model (checked against `run` when given)."""
    folder = Path(onnx_dir)
    read_info(folder, run)
    try:
        import onnxruntime as ort
    except ImportError:
        raise TextloraError(f"the ONNX backend needs onnxruntime; {INSTALL_HINT}") from None
    return OnnxClassifier(_session(ort, folder / ONNX_FILE), folder)


def _session(ort, path: Path):
    options = ort.SessionOptions()
    # onnxruntime ignores OMP_NUM_THREADS; torch's thread count honours it (and torch.set_num_threads),
    # so both backends use the same cores and a limit set for one holds for the other.
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: it warns about every initializer it folds
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail, ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise TextloraError(f"could not load {path} ({first}); the file is corrupt or truncated, "
                            "export the run again") from None


# --------------------------------------------------------------------------- parity


MEASURES = {"classification": "accuracy", "multi_label": "f1_micro", "regression": "mae"}
"""What the gate compares per task: accuracy, micro F1 (each label against its threshold from task.json), or MAE
in the target's units."""


@dataclass(frozen=True)
class Parity:
    """The ONNX model against the torch fp32 merged model on the run's own test rows (calibrated).

    The measure depends on the run's task: classification compares accuracy and argmax labels;
    multi_label compares micro F1 and label sets (each label's sigmoid probability against its
    threshold in task.json, "finetuned"); regression compares MAE in the target's units (label
    agreement does not apply: `agreement` is None)."""

    rows: int
    agreement: float | None
    """Share of rows where both give the same label (multi_label: the same label set); None for regression."""
    metric_torch: float
    """The task's measure (MEASURES) of torch fp32 on the rows."""
    metric_onnx: float
    max_diff: float
    """Largest absolute difference of any class / label probability (regression: of any predicted value)."""
    precision: str
    task: str = "classification"
    target_std: float | None = None
    """regression: the training target's standard deviation (task.json), the unit of the MAE limit."""

    @property
    def measure(self) -> str:
        return MEASURES[self.task]

    @property
    def change_points(self) -> float:
        """Accuracy / micro F1 points gained by the ONNX model (negative: lost); + 0.0 turns -0.0 into 0.0.
        regression: the MAE change in hundredths of the training target's standard deviation (positive: worse)."""
        if self.task == "regression":
            return 100.0 * self.mae_increase / self.target_std + 0.0
        return 100.0 * (self.metric_onnx - self.metric_torch) + 0.0

    @property
    def drop_points(self) -> float:
        """What --max-drop limits: accuracy / micro F1 points lost, or (regression) the MAE increase in
        percent of the training target's standard deviation."""
        return self.change_points if self.task == "regression" else -self.change_points + 0.0

    @property
    def mae_increase(self) -> float:
        """regression: ONNX MAE minus torch fp32 MAE, in the target's units (positive: worse)."""
        return self.metric_onnx - self.metric_torch + 0.0

    def max_mae_increase(self, max_drop: float) -> float:
        """regression: the MAE increase the gate allows, in the target's units."""
        return max_drop / 100.0 * self.target_std

    def line(self) -> str:
        tail = f"(onnx {self.precision})"
        if self.task == "regression":
            return (f"on the run's {self.rows} test rows, MAE {self.metric_torch:.4g} (torch fp32) -> "
                    f"{self.metric_onnx:.4g} {tail}, {self.mae_increase:+.3g} in the target's units "
                    f"({self.change_points:+.2f} % of its training standard deviation {self.target_std:.4g}); "
                    f"largest value difference {self.max_diff:.2e}; label agreement does not apply")
        if self.task == "multi_label":
            return (f"on the run's {self.rows} test rows, label sets agree on {self.agreement:.2%}; micro F1 "
                    f"{self.metric_torch:.4f} (torch fp32) -> {self.metric_onnx:.4f} {tail}, "
                    f"{self.change_points:+.2f} pt; largest probability difference {self.max_diff:.2e}")
        return (f"on the run's {self.rows} test rows, labels agree on {self.agreement:.2%}; accuracy "
                f"{self.metric_torch:.2%} (torch fp32) -> {self.metric_onnx:.2%} {tail}, "
                f"{self.change_points:+.2f} pt; largest probability difference {self.max_diff:.2e}")

    def failures(self, max_drop: float, min_agreement: float = DEFAULT_MIN_AGREEMENT) -> list[str]:
        """What fails the gate, in words with the numbers (empty: it passes). `min_agreement` in percent."""
        out = []
        if self.task == "regression":
            limit = self.max_mae_increase(max_drop)
            # 1e-12 of the scale: an ONNX model equal to torch but for float rounding passes at --max-drop 0.
            if self.mae_increase > limit + 1e-12 * self.target_std:
                out.append(f"MAE increase {self.mae_increase:.4g} over the limit {limit:.4g} ({max_drop:g} % of the "
                           f"training target's standard deviation {self.target_std:.4g})")
            return out
        if self.drop_points > max_drop:
            what = "micro F1" if self.task == "multi_label" else "accuracy"
            out.append(f"{what} drop {self.drop_points:.2f} pt over the limit {max_drop:g} pt")
        # 1e-9: an agreement of exactly the limit (99 of 100 rows at 99 %) passes despite float rounding.
        if 100.0 * self.agreement < min_agreement - 1e-9:
            what = "label-set" if self.task == "multi_label" else "label"
            out.append(f"{what} agreement {self.agreement:.2%} under the limit {min_agreement:g} %")
        return out

    def as_dict(self, max_drop: float, min_agreement: float = DEFAULT_MIN_AGREEMENT) -> dict[str, Any]:
        """parity.json: which measure the gate used, both models' values of it, and the limits."""
        m = self.measure
        out: dict[str, Any] = {
            "checked": True, "task": self.task, "measure": m, "rows": self.rows, "precision": self.precision,
            f"{m}_torch": self.metric_torch, f"{m}_onnx": self.metric_onnx,
        }
        if self.task == "regression":
            out.update(mae_increase=self.mae_increase, max_value_diff=self.max_diff, target_std=self.target_std,
                       max_drop_percent_of_std=max_drop, max_mae_increase=self.max_mae_increase(max_drop),
                       agreement=None, min_agreement_percent=None)
        else:
            out.update({f"{m}_change_points": self.change_points, "max_prob_diff": self.max_diff,
                        "max_drop_points": max_drop, "agreement": self.agreement,
                        "agreement_of": "label sets" if self.task == "multi_label" else "labels",
                        "min_agreement_percent": min_agreement})
        failures = self.failures(max_drop, min_agreement)
        return {**out, "passed": not failures, "failures": failures}


def parity_rows(run: RunDir) -> tuple[list[str], np.ndarray]:
    """The run's test texts and labels (tasks.label_array form: class ids, (n, K) multi-hot, numbers),
    reloaded from its data (a run folder keeps no texts).

    The data is read again with the run's own config, seed and task; its fingerprint must equal the
    recorded one and its test labels the recorded ones, or the rows are not the run's. Raises
    TextloraError saying why when they cannot be had.
    """
    from textlora.config import config_from_dict
    from textlora.data import fingerprint, load_splits
    from textlora.tasks import label_array

    cfg = config_from_dict(run.config())
    try:
        splits = load_splits(cfg.data, cfg.seed, cfg.task)
    except TextloraError as err:
        raise TextloraError(f"the run's data {cfg.data.source!r} cannot be read ({err})") from None
    except (OSError, ValueError) as err:  # hub and file readers raise these when the data is gone
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise TextloraError(f"the run's data {cfg.data.source!r} cannot be read ({first})") from None
    recorded = run.record().data.get("fingerprint")
    found = fingerprint(splits)
    if run.task == "classification":
        labels = splits.test["label"].to_numpy()
    else:
        labels = label_array(run.task, splits.test["label"], len(run.label_names))
    if recorded != found or not np.array_equal(labels, np.asarray(run.test_probs()["labels"])):
        raise TextloraError(f"the run's data {cfg.data.source!r} changed since training (fingerprint {found}, "
                            f"the run recorded {recorded})")
    return list(splits.test["text"]), labels


def check_parity(run: RunDir, torch_model, onnx_model, texts: Sequence[str], labels: np.ndarray,
                 precision: str, batch_size: int = 64, progress: bool = False) -> Parity:
    """Score the rows with both models through Predictor (same preprocessing, truncation, temperature,
    thresholds): what each decides (labels, label sets, numbers) and the task's measure on the labels."""
    from textlora.predict import Predictor

    predictors = [Predictor.for_model(run, model, batch_size, component="finetuned") for model in (torch_model, onnx_model)]
    outputs = [p.predict_probs(texts, progress) for p in predictors]
    max_diff = float(np.abs(outputs[0] - outputs[1]).max()) if len(labels) else 0.0
    common = {"rows": len(labels), "max_diff": max_diff, "precision": precision, "task": run.task}
    if run.task == "regression":
        maes = [float(np.abs(np.asarray(o, dtype=np.float64) - labels).mean()) for o in outputs]
        return Parity(agreement=None, metric_torch=maes[0], metric_onnx=maes[1],
                      target_std=float(run.task_file["scale"]["std"]), **common)
    if run.task == "multi_label":
        from textlora.multilabel import multilabel_metrics, predict_sets

        thresholds = predictors[0].thresholds
        sets = [predict_sets(o, thresholds) for o in outputs]
        f1 = [multilabel_metrics(labels, o, run.label_names, thresholds)["f1_micro"] for o in outputs]
        return Parity(agreement=float((sets[0] == sets[1]).all(axis=1).mean()), metric_torch=f1[0],
                      metric_onnx=f1[1], **common)
    torch_labels, onnx_labels = outputs[0].argmax(1), outputs[1].argmax(1)
    return Parity(agreement=float((torch_labels == onnx_labels).mean()),
                  metric_torch=float((torch_labels == labels).mean()),
                  metric_onnx=float((onnx_labels == labels).mean()), **common)


# --------------------------------------------------------------------------- export


class LogitsOnly(torch.nn.Module):
    """The transformers classifier with named tensor inputs and one output, logits: the graph's signature."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


@contextlib.contextmanager
def _quiet():
    """The exporter prints its progress, registration notes and shape warnings meant for
    debugging it, and quantize_dynamic logs advice on the root logger; none of it is the user's."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def write_onnx(model, tokenizer, path: Path) -> list[str]:
    """Export `model` (a transformers sequence classifier, fp32) to `path`; returns the input names."""
    from torch.export import Dim

    names = [n for n in INPUTS if n in ("input_ids", "attention_mask") or n in tokenizer.model_input_names]
    # Two rows of different lengths, both above 1: torch.export would specialise a dimension of 0 or 1.
    example = tokenizer(["a short text for the export", "another one"], padding=True, return_tensors="pt")
    args = tuple(example[n] if n in example else torch.zeros_like(example["input_ids"]) for n in names)
    batch, sequence = Dim("batch"), Dim("sequence")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        with _quiet():
            torch.onnx.export(
                LogitsOnly(model).eval(), args, str(path), input_names=names,
                output_names=["logits"], opset_version=OPSET, dynamo=True, verbose=False,
                dynamic_shapes=tuple({0: batch, 1: sequence} for _ in names),
                external_data=size > EXTERNAL_DATA_BYTES)
    except ImportError as err:
        raise TextloraError(f"ONNX export needs {err.name or 'onnxscript'}; {INSTALL_HINT}") from None
    return names


INT8_SETTINGS: dict[str, dict[str, Any]] = {
    "per_tensor": {},
    "per_channel": {"per_channel": True},
    "per_tensor_7bit": {"reduce_range": True},
    "per_channel_7bit": {"per_channel": True, "reduce_range": True},
}
"""quantize_dynamic's weight options, by name. per_channel: one scale per output column instead of
one per matrix, so a column of small weights keeps its resolution. reduce_range: weights in 7 bits.
On CPUs without VNNI (AVX2 only), onnxruntime's u8 x s8 kernel adds pairs of products in int16
(vpmaddubsw) and saturates with full-range weights; 7-bit weights cannot. The export may run on
any CPU, so the default must hold on those. benchmarks/int8_options.py compares them on rows that
are neither the run's training nor its test rows (benchmarks/results/int8_options.json)."""
INT8_DEFAULT = "per_channel_7bit"


def quantize_int8(source: Path, target: Path, setting: str = INT8_DEFAULT) -> None:
    """Dynamic int8 quantization (onnxruntime): MatMul/Gemm weights stored as int8, activations
    quantized per batch at run time; embeddings and layer norms stay fp32. `setting`: a name in
    INT8_SETTINGS.

    onnxruntime suggests its quant_pre_process first; its symbolic shape inference fails on the
    dynamo exporter's graphs (checked with BERT), and quantize_dynamic needs no shapes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         use_external_data_format=(source.parent / f"{source.name}.data").exists(),
                         **INT8_SETTINGS[setting])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("torch", "transformers", "onnx", "onnxruntime", "onnxscript"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def export_onnx(run_dir: str | Path, out: str | Path, quantize: str | None = None, overwrite: bool = False,
                force: bool = False, max_drop: float = DEFAULT_MAX_DROP, base_model: str | None = None,
                say: Callable[[str], None] = print, progress: bool = False,
                min_agreement: float = DEFAULT_MIN_AGREEMENT) -> tuple[Path, Parity | None]:
    """Export the run's merged fp32 classifier to `out` as ONNX (int8 with quantize="int8").

    Before the folder is put in place, the parity gate scores the run's test rows with the ONNX
    model and the torch fp32 model: an accuracy (multi_label: micro F1) drop above `max_drop`
    points, labels (label sets) that agree with torch fp32 on fewer than `min_agreement` percent of
    the rows, for regression an MAE increase above `max_drop` percent of the training target's
    standard deviation, or test rows that cannot be had, refuse the export unless `force`. Returns
    the folder and the parity (None when it could not be checked).
    """
    from textlora.config import config_from_dict
    from textlora.export import check_destination, staged_folder
    from textlora.models import load_tokenizer
    from textlora.predict import load_run_model

    if quantize not in (None, *QUANTIZE):
        raise TextloraError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZE)} or leave it out (fp32)")
    if max_drop < 0:
        raise TextloraError(f"--max-drop must be 0 or more (accuracy or micro F1 points; regression: percent of "
                            f"the target's standard deviation), got {max_drop:g}")
    if not 0 <= min_agreement <= 100:
        raise TextloraError(f"--min-agreement must be between 0 and 100 (percent of the test rows), got {min_agreement:g}")
    run = open_run(run_dir)
    if run.info.get("objective") in LABEL_WORD_OBJECTIVES:
        raise TextloraError(f"ONNX export covers classification heads (objective classifier); run {str(run_dir)!r} "
                            "scores label words with a language model, export it with --merged")
    try:
        import onnxruntime as ort
    except ImportError:
        raise TextloraError(f"ONNX export needs onnxruntime; {INSTALL_HINT}") from None
    out = Path(out)
    check_destination(run.path, out, overwrite)
    precision = quantize or "fp32"
    # Read before minutes of export: the gate needs the rows, and without --force they decide.
    rows, unchecked = None, None
    try:
        rows = parity_rows(run)
    except TextloraError as err:
        if not force:
            raise TextloraError(f"cannot run the parity gate: {err}; make it readable again (relative paths are "
                                "read from where you run this), or pass --force to export unchecked") from None
        unchecked = str(err)
    model = load_run_model(run, base_model, merge=True).eval()
    tokenizer = load_tokenizer(str(run.path / "tokenizer"))
    model_cfg = config_from_dict(run.config()).model
    with staged_folder(out) as folder:
        path = folder / ONNX_FILE
        if quantize:
            (folder / ".fp32").mkdir()
            names = write_onnx(model, tokenizer, folder / ".fp32" / ONNX_FILE)
            quantize_int8(folder / ".fp32" / ONNX_FILE, path)
            shutil.rmtree(folder / ".fp32")
        else:
            names = write_onnx(model, tokenizer, path)
        parity = None
        if rows is not None:
            onnx_model = OnnxClassifier(_session(ort, path), folder)
            parity = check_parity(run, model, onnx_model, *rows, precision, progress=progress)
            say(f"parity: {parity.line()}")
            failures = parity.failures(max_drop, min_agreement)
            if failures and not force:
                raise TextloraError(f"the ONNX model fails the parity gate: {'; '.join(failures)} ({parity.line()}); "
                                    "pass --force to export it anyway")
        write_json(folder / PARITY_FILE,
                   parity.as_dict(max_drop, min_agreement) if parity else {"checked": False, "reason": unchecked})
        # The run's max_length as the tokenizer's own limit: a plain `tokenizer(texts, truncation=True)`
        # then cuts where the run did (head truncation; onnx.json names the run's strategy).
        tokenizer.model_max_length = model_cfg.max_length
        tokenizer.save_pretrained(str(folder))
        model.config.id2label = dict(enumerate(run.label_names))
        model.config.label2id = {name: i for i, name in enumerate(run.label_names)}
        model.config.save_pretrained(str(folder))
        shutil.copy2(run.path / "labels.json", folder / "labels.json")
        for name in (CALIBRATION_FILE, SHIP_FILE, TASK_FILE):  # task.json: thresholds / target and bins
            if (run.path / name).is_file():
                shutil.copy2(run.path / name, folder / name)
        ship = run.ship_plan
        if ship.get("partner"):  # an ensemble or a classical row ships: its model travels too
            shutil.copytree(run.path / CLASSICAL_DIR / ship["partner"], folder / CLASSICAL_DIR / ship["partner"])
        write_json(folder / INFO_FILE, {
            "format": FORMAT, "run": run.info.get("name", run.path.name), "task": run.task,
            "method": run.info.get("method"),
            "base_model": run.info.get("base_model"), "label_names": run.label_names, "inputs": names,
            "output": "logits", "opset": OPSET, "precision": precision, "max_length": model_cfg.max_length,
            "int8_setting": {"name": INT8_DEFAULT, **INT8_SETTINGS[INT8_DEFAULT]} if quantize else None,
            "truncation": run.info.get("truncation") or model_cfg.truncation, "artifact_sha256": artifact_digest(run),
            "exporter": "torch.onnx.export(dynamo=True)", "versions": _versions(),
        })
    return out, parity
