"""The loaded model(s): one base model, every adapter run attached to it with peft (load_adapter)
and picked per request with set_adapter; a run's own predictor (tokenizer, temperature, what ships)
around it. Written here: the head-shape surgery peft does not do for adapters with other label counts."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from textlora.errors import TextloraError
from textlora.runs import RunDir, open_run

if TYPE_CHECKING:  # torch and transformers load only when a server starts, not for `textlora --help`
    from textlora.predict import Prediction, Predictor

# Weight files that unpickle on load: a run folder holding one is refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class Adapter:
    """One served run: its predictor (sharing the base model) and what /v1/models shows."""

    name: str
    run: RunDir
    predictor: "Predictor"
    peft_name: Optional[str]  # None: a merged or full model, nothing to switch

    def describe(self) -> dict[str, Any]:
        record = self.run.record()  # the run record, as every reader reads metrics.json
        out = {
            "name": self.name,
            "method": self.run.info.get("method"),
            "labels": self.run.label_names,
            "metrics": {
                "test": _headline(record.final, record.task),
                "baselines": {k: _headline(v, record.task) for k, v in record.baselines.items()},
            },
        }
        if record.task != "classification":  # what the answers hold: a label set, or a number (and its bin)
            out["task"] = record.task
            if self.predictor.thresholds is not None:
                out["thresholds"] = dict(zip(self.predictor.label_names, map(float, self.predictor.thresholds)))
            if self.predictor.bins:
                out["bins"] = self.predictor.bins
        return out


def _headline(row: dict[str, Any], task: str = "classification") -> dict[str, Any]:
    """The row's headline metrics (tables.task_metrics: classification's accuracy ... ROC-AUC, micro F1 ...
    of multi_label, MAE ... of regression), with the 95 % intervals of the other tasks."""
    from textlora.tables import task_metrics

    out = {k: row[k] for k in ("n", *task_metrics(task)) if k in row}
    if task != "classification" and row.get("intervals"):
        out["intervals"] = row["intervals"]
    return out


class Engine:
    """The loaded model(s): `predict(adapter, texts)` classifies one gathered batch, synchronously."""

    def __init__(self, model, adapters: dict[str, Adapter], base_model: str):
        self.model = model
        self.adapters = adapters
        self.base_model = base_model
        self.default = next(iter(adapters))
        self._active: Optional[str] = None

    def predict(self, name: str, texts: Sequence[str]) -> list["Prediction"]:
        adapter = self.adapters[name]
        # Switching is cheap but not free (it walks every module), so only on change.
        # Safe without a lock: the batcher calls this from a single thread.
        if adapter.peft_name is not None and adapter.peft_name != self._active:
            self.model.set_adapter(adapter.peft_name)
            self._active = adapter.peft_name
        return adapter.predictor.predict(texts)

    def warm_up(self) -> None:
        """One pass per adapter (the first allocates), through `predict` so each runs with its own
        adapter and head: a predictor called directly would run whichever adapter peft left
        active, e.g. a 3-class head under a 2-class adapter's label names."""
        for name in self.adapters:
            self.predict(name, ["warm-up"])


def parse_run_args(items: Sequence[str]) -> list[tuple[str, Path]]:
    """`RUN_DIR` or `NAME=RUN_DIR`; the name defaults to the folder's name."""
    out: list[tuple[str, Path]] = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or Path(item).exists():
            name, path = Path(item).resolve().name, item
        if any(name == seen for seen, _ in out):
            raise TextloraError(f"two runs are named {name!r}; name them apart with NAME=RUN_DIR")
        out.append((name, Path(path)))
    if not out:
        raise TextloraError("no run folder given; pass one or more RUN_DIRs")
    return out


def load_engine(runs: Sequence[tuple[str, "str | Path"]], base_model: Optional[str] = None,
                pass_size: int = 16, precision: str = "fp32", backend: Optional[str] = None,
                onnx: "str | Path | None" = None) -> Engine:
    """Open and check every run, load the base model once and attach each adapter to it
    (`precision`: fp32, bf16 or auto; `backend` torch or onnx with `onnx` the export: as for textlora.predict)."""
    from textlora.predict import (Predictor, cast_for_inference, check_backend, inference_precision, load_run_model,
                                  resolve_backend)

    inference_precision(precision)  # a bad value fails before any loading
    backend = resolve_backend(backend, onnx)
    check_backend(backend, onnx, precision)
    if backend == "onnx":
        if len(runs) != 1:  # an export is one merged model: there is no shared base to switch adapters on
            raise TextloraError("--backend onnx serves one run per server; start one server per run")
        (name, path), = runs
        predictor = Predictor.from_run(path, batch_size=pass_size, backend="onnx", onnx=onnx)
        run = open_run(path)
        return Engine(predictor.model, {name: Adapter(name, run, predictor, None)}, run.info.get("base_model") or "?")

    opened = [(name, open_run(path)) for name, path in runs]
    for name, run in opened:
        _check_safe(name, run)
    first_name, first = opened[0]
    base = base_model or first.info.get("base_model") or "?"
    if len(opened) == 1:
        # One run: merge the adapter (if any) into the base, the fastest form.
        model = load_run_model(first, base_model, merge=True, precision=precision)
        predictor = Predictor.for_model(first, model, pass_size)
        return Engine(model, {first_name: Adapter(first_name, first, predictor, None)}, base)
    _check_same_base(opened)
    model = load_run_model(first, base_model, merge=False)  # a PeftModel, adapter "default"
    adapters = {first_name: Adapter(first_name, first, Predictor.for_model(first, model, pass_size), "default")}
    for i, (name, run) in enumerate(opened[1:], start=1):
        # Internal names, not the user's: peft adapter names end up in module
        # names, where a dot or a clash with "default" would break things.
        peft_name = f"adapter{i}"
        _attach_adapter(model, run, peft_name, name)
        adapters[name] = Adapter(name, run, Predictor.for_model(run, model, pass_size), peft_name)
    cast_for_inference(model, precision)  # in place: every adapter's predictor holds this model
    return Engine(model, adapters, base)


def _check_safe(name: str, run: RunDir) -> None:
    if run.config().get("model", {}).get("trust_remote_code"):
        raise TextloraError(f"run {name!r} needs trust_remote_code; serve never runs code from a model repository")
    pickled = [p.name for p in run.artifact.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickled:
        raise TextloraError(
            f"run {name!r} holds pickled weights ({', '.join(pickled)}); serve loads safetensors only, re-save the run"
        )
    source = Path(run.info.get("base_model_source", ""))
    if run.info["artifact"] == "adapter" and source.is_dir() and not any(source.glob("*.safetensors")):
        raise TextloraError(f"base model {str(source)!r} has no safetensors weights; convert it (serve loads no pickles)")


def _check_same_base(runs: list[tuple[str, RunDir]]) -> None:
    first_name, first = runs[0]
    for name, run in runs:
        if run.info["artifact"] != "adapter":
            raise TextloraError(
                f"run {name!r} is a whole model (method {run.info.get('method')}), not an adapter; serve it alone"
            )
        if run.info.get("objective") == "seq2seq":
            raise TextloraError(f"run {name!r} scores label words with a language model; serve it alone")
        same = run.info.get("base_signature") == first.info.get("base_signature") and (
            run.info.get("base_model_source") == first.info.get("base_model_source")
            or run.info.get("base_model") == first.info.get("base_model")
        )
        if not same:
            raise TextloraError(
                f"adapters {first_name!r} and {name!r} were trained on different base models "
                f"({first.info.get('base_model')!r} vs {run.info.get('base_model')!r}); serve them from separate servers"
            )


def _attach_adapter(model, run: RunDir, peft_name: str, name: str) -> None:
    """peft load_adapter, after giving the new adapter's head copy its own shape.

    peft copies the base's head for every adapter (modules_to_save); an
    adapter trained with another number of labels needs a head of another
    shape, or loading its weights fails. The head is built here from the
    run's saved classification config, the way transformers builds it.
    """
    import torch
    from peft import PeftConfig
    from peft.utils.other import ModulesToSaveWrapper
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = PeftConfig.from_pretrained(str(run.artifact))
    config.inference_mode = True
    try:
        model.add_adapter(peft_name, config)
    except ValueError as err:  # e.g. LoRA and IA3 adapters cannot share one peft model
        first = (str(err).splitlines() or [""])[0][:160]
        raise TextloraError(f"adapter {name!r} cannot join the others ({first}); serve it from a separate server") from None
    classifier_config = AutoConfig.from_pretrained(str(run.artifact))
    shaped = None
    for path, module in model.base_model.model.named_modules():
        if not isinstance(module, ModulesToSaveWrapper):
            continue
        if shaped is None:
            with torch.device("meta"):  # shapes only; the weights come from the adapter
                shaped = AutoModelForSequenceClassification.from_config(classifier_config)
        wanted = shaped.get_submodule(path)
        have = {k: p.shape for k, p in module.original_module.named_parameters()}
        if have != {k: p.shape for k, p in wanted.named_parameters()}:
            device = next(module.original_module.parameters()).device
            module.modules_to_save[peft_name] = wanted.to_empty(device=device).eval()
    model.load_adapter(str(run.artifact), adapter_name=peft_name)
