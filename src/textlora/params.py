"""Parameter accounting from a model config alone: no weights downloaded or allocated.

    from textlora.params import parameter_table
    table = parameter_table("bert-base-uncased", methods=["lora"], ranks=[4, 8, 16, 32])
    [(row.r, row.trainable, row.total) for row in table.rows]  # seed 000's rank table

The model is built on PyTorch's meta device (shapes without storage) and
adapted by the same `models.apply_method` a training run uses, so the counts
are the ones `textlora train` would print, in milliseconds, for any size.
"""

from __future__ import annotations

import argparse
import difflib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from textlora.config import LABEL_WORD_OBJECTIVES, METHOD_TRAITS, METHODS, RANKED_METHODS, Config, load_config
from textlora.errors import TextloraError

# Architecture hyper-parameters of the models the seeds use, so `textlora params`
# works offline. Values as in each model's config.json on the hub; only what
# shapes parameters matters here.
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base-uncased": {
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2,
        "pad_token_id": 0,
    },
    "distilbert-base-uncased": {
        "model_type": "distilbert", "vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072,
        "max_position_embeddings": 512, "sinusoidal_pos_embds": False, "pad_token_id": 0,
    },
    "roberta-base": {
        "model_type": "roberta", "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    },
    "google/flan-t5-base": {
        "model_type": "t5", "vocab_size": 32128, "d_model": 768, "d_ff": 2048, "d_kv": 64, "num_heads": 12,
        "num_layers": 12, "num_decoder_layers": 12, "relative_attention_num_buckets": 32,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "is_encoder_decoder": True,
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
    },
}



@dataclass(frozen=True)
class ParamRow:
    method: str
    r: int | None
    targets: str
    trainable: int
    total: int

    @property
    def ratio(self) -> float:
        return self.trainable / self.total if self.total else 0.0


@dataclass(frozen=True)
class ParamTable:
    model: str
    model_type: str
    objective: str
    """A resolved objective (config.RESOLVED_OBJECTIVES): classifier, or seq2seq / causal (label words)."""
    labels: int
    before: int
    """Parameters of the model before adaptation (classification head included)."""
    rows: list[ParamRow]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [{**asdict(row), "trainable_ratio": row.ratio} for row in self.rows]
        return out


# --------------------------------------------------------------------------- configs


def load_model_config(name: str, num_labels: int = 2):
    """(transformers config, its values as written) of a built-in name, a local folder or config.json, or a hub id."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers import AutoConfig, PretrainedConfig

    labels = {"num_labels": num_labels, "id2label": {i: f"LABEL_{i}" for i in range(num_labels)},
              "label2id": {f"LABEL_{i}": i for i in range(num_labels)}}
    if name in BUILTIN_CONFIGS:
        raw = dict(BUILTIN_CONFIGS[name])
        return AutoConfig.for_model(**raw, **labels), raw
    from textlora.models import is_gguf, read_model_config, resolve_model_source

    if Path(name).expanduser().is_file() and not is_gguf(str(name)):
        source = str(Path(name).expanduser())  # a config.json on its own
    else:
        # a local folder (checked for config.json), a GGUF file, packaged:, or a hub id
        source = resolve_model_source(name)
    if is_gguf(source):  # the config is in the GGUF's metadata; there is no config.json to read
        config = read_model_config(source)
        config.id2label, config.label2id = labels["id2label"], labels["label2id"]
        return config, config.to_dict()
    before = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()  # offline, every retry of a download prints a line; the error below says it once
    try:
        # The values as written too: transformers rewrites some (T5's tie_word_embeddings).
        raw, _ = PretrainedConfig.get_config_dict(source)
        return AutoConfig.from_pretrained(source, **labels), raw
    except (OSError, ValueError, KeyError) as err:
        close = difflib.get_close_matches(name, list(BUILTIN_CONFIGS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise TextloraError(
            f"no usable config for model {name!r} ({first}); {hint}give a local folder or config.json, a reachable "
            f"hub id, or one of the built-in: {', '.join(BUILTIN_CONFIGS)}"
        ) from None
    finally:
        hub_logging.set_verbosity(before)


# --------------------------------------------------------------------------- counting


def _untie_output_embeddings(model, raw: dict[str, Any]) -> None:
    """Give the LM head its own weight where the checkpoint has one.

    transformers 5 builds every T5 with the LM head tied to the embeddings
    (it forces tie_word_embeddings=True in T5Config) and unties them at load
    time when the checkpoint holds two different tensors, as Flan-T5's does
    (its config.json says tie_word_embeddings: false). Counting from the
    config must do the same, or Flan-T5-base comes out 24.7M short.
    """
    import torch

    if raw.get("tie_word_embeddings", True) is not False:
        return
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if inputs is not None and outputs is not None and outputs.weight is inputs.weight:
        outputs.weight = torch.nn.Parameter(torch.empty_like(outputs.weight))


def adapted_parameter_count(model_config, cfg: Config, objective: str | None = None,
                            raw: dict[str, Any] | None = None):
    """(parameters before adaptation, models.ParamCount after cfg's method) of the full-size model.

    Built on the meta device: exact counts, no weights. The classification
    head is counted as the head a run trains; other fresh modules (a pooler
    missing from a checkpoint) cannot be known without the checkpoint, so
    none are assumed. `raw`: the config's values as written (tie_word_embeddings).
    """
    from textlora.models import count_parameters, objective_for

    before, model = _adapted(model_config, cfg, objective or objective_for(model_config, cfg), raw or {})
    return before, count_parameters(model)


def _adapted(model_config, cfg: Config, objective: str, raw: dict[str, Any]):
    import torch
    from transformers.utils import logging

    from textlora.models import apply_method, auto_model_class

    auto_class = auto_model_class(objective)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # peft and transformers warn about meta tensors and fresh heads
            try:
                model = auto_class.from_config(model_config)
            except ValueError as err:
                raise TextloraError(f"cannot build a {auto_class.__name__[len('AutoModelFor'):]} model from "
                                    f"{model_config.model_type!r} ({str(err).splitlines()[0][:120]})") from None
            _untie_output_embeddings(model, raw)
            before = sum(p.numel() for p in model.parameters())
            return before, apply_method(cfg, model, [], objective)
    finally:
        logging.set_verbosity(verbosity)


def _targets_text(cfg: Config, model) -> str:
    """The adapted modules as the recipe names them, or as peft resolved a preset."""
    if not METHOD_TRAITS[cfg.method].adapter:
        return "-"
    targets = cfg.lora.target_modules
    if targets is None:
        targets = sorted(model.peft_config["default"].target_modules)
    return targets if isinstance(targets, str) else ",".join(targets)


def parameter_table(model: str | None = None, methods: Sequence[str] | None = None,
                    ranks: Sequence[int] | None = None, labels: int | None = None,
                    recipe: str | Path | None = None, overrides: Sequence[str] = ()) -> ParamTable:
    """Trainable and total parameters of each method (and rank) on `model`.

    The recipe (or the defaults) and `overrides` give every other setting
    (targets, bias, exclude_modules, ...); `model` defaults to the recipe's.
    """
    base = load_config(recipe, overrides)
    model = model or (base.model.name if recipe is not None else None)
    if not model:
        raise TextloraError("give a MODEL (built-in name, local folder or config.json) or --recipe")
    methods = list(methods or [base.method])  # each is validated by load_config below
    ranks = list(ranks or [base.lora.r])
    if labels is None:
        labels = len(base.data.label_names) if base.data.label_names else 2
    if labels < 2:
        raise TextloraError(f"--labels must be >= 2 classes, got {labels}")
    from textlora.models import count_parameters, objective_for

    model_config, raw = load_model_config(model, labels)
    objective = objective_for(model_config, base)
    if objective in LABEL_WORD_OBJECTIVES and "head" in methods:
        raise TextloraError(f"method head trains a classification head, which a label-word ({objective}) model has none of; "
                            "drop head from --method")
    before = None
    rows = []
    for method in methods:
        for r in ranks if method in RANKED_METHODS else [None]:
            extra = [f"method={method}"] + ([f"lora.r={r}"] if r is not None else [])
            cfg = load_config(recipe, [*overrides, *extra])
            before, adapted = _adapted(model_config, cfg, objective, raw)
            counted = count_parameters(adapted)
            rows.append(ParamRow(method=method, r=r, targets=_targets_text(cfg, adapted),
                                 trainable=counted.trainable, total=counted.total))
    return ParamTable(model=model, model_type=model_config.model_type, objective=objective,
                      labels=labels, before=before or 0, rows=rows)


def render_table(table: ParamTable) -> str:
    from textlora.tables import render

    kind = (f"sequence classification, {table.labels} labels" if table.objective == "classifier"
            else f"{table.objective} LM scoring label words, no classification head")
    headers = ["method", "r", "targets", "trainable", "total", "trainable %"]
    body = [[row.method, row.r, row.targets, row.trainable, row.total, f"{100 * row.ratio:.4f}"] for row in table.rows]
    return "\n".join([
        f"{table.model} ({table.model_type}, {kind}): {table.before:,} parameters before adaptation",
        "",
        render(headers, body),
    ])


# --------------------------------------------------------------------------- CLI


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _ranks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ranks = [int(part) for part in _split(text)]
    except ValueError:
        ranks = []
    if not ranks or any(r < 1 for r in ranks):
        raise TextloraError(f"--r {text!r} must be comma-separated positive integers, e.g. --r 4,8,16,32")
    return ranks


def cmd_params(args: argparse.Namespace) -> int:
    overrides = list(args.set or [])
    if args.targets:
        targets = _split(args.targets)
        value = targets[0] if targets == ["all-linear"] else "[" + ", ".join(targets) + "]"
        overrides.append(f"lora.target_modules={value}")
    if args.alpha is not None:
        overrides.append(f"lora.alpha={args.alpha}")
    table = parameter_table(args.model, _split(args.method) or None, _ranks(args.r), args.labels, args.recipe,
                            overrides)
    print(json.dumps(table.as_dict(), indent=2) if args.json else render_table(table))
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "params",
        help="trainable / total parameters of each method and rank, from a model config (no weights)",
        description="Count the parameters a run would train, from the model's config alone: the model is built "
        "on the meta device (no weights downloaded or allocated) and adapted exactly as `textlora train` does. "
        f"Built-in configs (offline): {', '.join(BUILTIN_CONFIGS)}.",
        epilog="example: textlora params bert-base-uncased --r 4,8,16,32 --targets query,value",
    )
    parser.add_argument("model", nargs="?", help="built-in name, a local model folder or config.json, or a hub id "
                        "(default: the recipe's model.name)")
    parser.add_argument("--method", help=f"method(s), comma-separated: {', '.join(METHODS)} (default: the recipe's, lora)")
    parser.add_argument("--r", help="rank(s), comma-separated, e.g. 4,8,16,32 (default: the recipe's lora.r)")
    parser.add_argument("--targets", help="modules to adapt, comma-separated, or all-linear (default: the preset)")
    parser.add_argument("--labels", type=int, help="classes of the head (default: the recipe's label_names, else 2)")
    parser.add_argument("--alpha", type=float, help="lora.alpha (scales the update; does not change the counts)")
    parser.add_argument("--recipe", help="take method, targets, bias, exclude_modules ... from this recipe")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override any recipe key, e.g. --set lora.bias=lora_only (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=cmd_params)
