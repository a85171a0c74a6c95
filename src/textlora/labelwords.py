"""Classification by label words: a language model scores each class's words after a prompt.

Flan-T5 classifies text-to-text: "Classify this text as negative, neutral or
positive:\n<review>" -> "positive". Rather than generating an answer and
parsing it (seed 004 took a softmax over generated outputs), every class's
label words are scored: their log-likelihood given the prompt,
log p(words_c | prompt), summed over their tokens. A softmax over these
scores gives per-class probabilities that sum to 1 and a confidence that
means something. The same scores before training are the zero-shot
baseline; training minimises the LM loss of the gold class's words.

Two kinds of language model score them (models.objective_for decides which):
- seq2seq (T5): the encoder reads the prompt, the decoder the words; the
  loss is transformers' own seq2seq loss from `labels`.
- causal (decoder-only: Llama, Qwen, GPT-2): the words follow the prompt in
  one sequence. The prompt is the user message of the tokenizer's chat
  template with the assistant's turn opened (an instruct model such as
  SmolLM2-Instruct answers there), or the plain rendered template when the
  tokenizer has none; the words' tokens are the ones the tokenizer gives them
  in that place. Training appends each row's gold words to its prompt
  (append_answers) and takes the causal LM loss of those tokens only.

`LabelWordClassifier` wraps the language model so that evaluation,
prediction and serving see a classifier whose logits are those scores.
Written here because neither transformers nor peft scores a fixed set of
answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from textlora.config import ModelConfig, PromptConfig
from textlora.errors import TextloraError

IGNORE_INDEX = -100  # transformers' label value for positions without a loss
PROMPT_STYLES = ("seq2seq", "plain", "chat")


@dataclass(frozen=True)
class Prompt:
    """The prompt template (with {labels} filled in), one answer per class, and how a model reads it."""

    template: str
    words: list[str]
    style: str = "seq2seq"
    """seq2seq: an encoder reads the rendered template (T5, with its own special tokens); plain: a
    decoder reads it after its BOS, and each answer follows after a space; chat: a decoder reads it
    as the user message of its tokenizer's chat template, and each answer opens the assistant's turn."""

    @classmethod
    def build(cls, prompt_cfg: PromptConfig, label_names: Sequence[str], objective: str = "seq2seq",
              tokenizer=None) -> "Prompt":
        """The prompt of a label-word `objective` (seq2seq | causal); a causal one uses the chat
        template of `tokenizer` when it has one."""
        words = [w.strip() for w in (prompt_cfg.label_words or label_names)]
        if len(words) != len(label_names):
            raise TextloraError(
                f"prompt.label_words has {len(words)} words for {len(label_names)} classes {list(label_names)}; "
                "give one per class, in label order"
            )
        listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
        if objective == "seq2seq":
            style = "seq2seq"
        else:
            style = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
        # Only {labels} is filled now; {text} stays for each text.
        return cls(template=prompt_cfg.template.replace("{labels}", listed), words=words, style=style)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "Prompt":
        """The prompt a run recorded (run.json "prompt"; runs from before decoders are seq2seq)."""
        style = record.get("style", "seq2seq")
        if style not in PROMPT_STYLES:
            raise TextloraError(f"the run's prompt style {style!r} is none of {', '.join(PROMPT_STYLES)}; its run.json "
                                "is damaged or from a newer textlora: re-train the run")
        return cls(template=record["template"], words=list(record["words"]), style=style)

    @property
    def causal(self) -> bool:
        """A decoder-only LM reads this prompt and then the answer, in one sequence."""
        return self.style != "seq2seq"

    def render(self, text: str) -> str:
        return self.template.replace("{text}", text)

    def model_text(self, tokenizer, text: str) -> str:
        """The string the model reads for `text`: the rendered template, inside the chat template
        (user message, assistant turn opened) with style chat."""
        rendered = self.render(text)
        if self.style != "chat":
            return rendered
        return tokenizer.apply_chat_template([{"role": "user", "content": rendered}], tokenize=False,
                                             add_generation_prompt=True)

    def ids(self, tokenizer, text: str) -> list[int]:
        """Token ids of the prompt around `text`, as the model reads them."""
        if self.style == "seq2seq":
            return list(tokenizer(self.render(text))["input_ids"])
        return self._ids(tokenizer, [self.model_text(tokenizer, text)])[0]

    def _ids(self, tokenizer, model_texts: list[str]) -> list[list[int]]:
        # A chat template writes its own special tokens (as transformers' apply_chat_template(tokenize=True)
        # reads it); a plain prompt gets the tokenizer's leading ones (BOS) but never a trailing EOS: the
        # answer follows it.
        lead = [] if self.style == "chat" else leading_special_ids(tokenizer)
        encoded = tokenizer(model_texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [lead + list(ids) for ids in encoded]

    def as_dict(self) -> dict[str, Any]:
        return {"template": self.template, "words": list(self.words), "style": self.style}


def leading_special_ids(tokenizer) -> list[int]:
    """The special tokens a tokenizer puts before a text (Llama's BOS; none for GPT-2 or Qwen)."""
    with_specials = list(tokenizer("a")["input_ids"])
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    for start in range(len(with_specials) - len(bare) + 1):
        if with_specials[start: start + len(bare)] == bare:
            return with_specials[:start]
    return []


def label_targets(tokenizer, prompt: "Prompt | Sequence[str]") -> list[list[int]]:
    """Token ids the model must produce for each class: T5's are the word's tokens and </s>; a
    decoder's (a causal Prompt) are the tokens the word gets where it stands, after the prompt."""
    if isinstance(prompt, Prompt) and prompt.causal:
        words = prompt.words
        targets = [answer_ids(tokenizer, prompt, word) for word in words]
    else:
        words = prompt.words if isinstance(prompt, Prompt) else list(prompt)
        targets = [list(tokenizer(word)["input_ids"]) for word in words]
    if any(not t for t in targets):
        raise TextloraError(f"a label word tokenizes to nothing: {list(words)}; choose other prompt.label_words")
    if len({tuple(t) for t in targets}) != len(targets):
        raise TextloraError(f"two label words tokenize alike: {list(words)}; choose distinct prompt.label_words")
    if isinstance(prompt, Prompt) and prompt.causal:
        # No end-of-answer token follows a decoder's words, so a word whose tokens begin another's
        # would always score at least as high as it.
        for a, ta in zip(words, targets):
            for b, tb in zip(words, targets):
                if a != b and tb[: len(ta)] == ta:
                    raise TextloraError(f"label word {a!r} is the first tokens of {b!r}; a decoder would always score "
                                        f"{a!r} at least as high: choose prompt.label_words that do not begin alike")
    return targets


def answer_ids(tokenizer, prompt: Prompt, word: str) -> list[int]:
    """The tokens of `word` after the prompt: what the tokenizer gives the prompt and the word
    together, beyond what it gives the prompt alone (a chat answer opens the assistant's turn; a
    plain one follows after a space); the word on its own when the two do not split there."""
    frame = prompt.model_text(tokenizer, "")
    joined = frame + (word if prompt.style == "chat" else " " + word)
    frame_ids, joined_ids = (list(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (frame, joined))
    if joined_ids[: len(frame_ids)] == frame_ids and len(joined_ids) > len(frame_ids):
        return joined_ids[len(frame_ids):]
    return list(tokenizer(word if prompt.style == "chat" else " " + word, add_special_tokens=False)["input_ids"])


def encode_prompts(tokenizer, texts: Sequence[str], prompt: Prompt, model_cfg: ModelConfig) -> dict[str, list[list[int]]]:
    """Token ids of each text inside the prompt, the *text* truncated so the whole prompt fits.

    Truncating the rendered prompt would cut the instruction's end (or an
    answer cue after the text, or a chat template's assistant turn); instead
    each text is cut at a token boundary (character offsets from the fast
    tokenizer), keeping its head, or its head and tail with truncation:
    head_tail, and only then rendered. A decoder's prompt leaves room for the
    longest answer, which follows it in the same sequence.
    """
    texts = list(texts)
    frame = len(prompt.ids(tokenizer, ""))
    reserve = max(len(t) for t in label_targets(tokenizer, prompt)) if prompt.causal else 0
    limit = model_cfg.max_length - reserve
    budget = limit - frame
    if budget < 8:
        raise TextloraError(
            f"the prompt takes {frame + reserve} of model.max_length {model_cfg.max_length} tokens"
            + (f" ({reserve} of them the longest answer)" if reserve else "")
            + ", leaving no room for the text; raise model.max_length or shorten prompt.template"
        )
    pieces = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    fitted = [_cut(text, offsets, budget, model_cfg) for text, offsets in zip(texts, pieces)]
    if not prompt.causal:
        encoded = dict(tokenizer([prompt.render(t) for t in fitted], truncation=True, max_length=model_cfg.max_length))
        encoded.pop("token_type_ids", None)
        return encoded
    ids = prompt._ids(tokenizer, [prompt.model_text(tokenizer, t) for t in fitted])
    for i, row in enumerate(ids):
        # The text and the template can tokenize together into a token or two more than apart; such a
        # text is cut shorter until its prompt fits (the end of a decoder's prompt must stay).
        cut = budget
        while len(row) > limit and cut > 1:
            cut -= len(row) - limit
            shorter = _cut(texts[i], pieces[i], max(1, cut), model_cfg)
            row = prompt.ids(tokenizer, shorter)
        ids[i] = row[:limit]
    return {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}


def _cut(text: str, offsets: Sequence[tuple[int, int]], budget: int, model_cfg: ModelConfig) -> str:
    if len(offsets) <= budget:
        return text
    if model_cfg.truncation == "head_tail":
        head = min(model_cfg.head_tail_split, budget - 1)
        tail = budget - head
        return text[: offsets[head - 1][1]] + " " + text[offsets[-tail][0]:]
    return text[: offsets[budget - 1][1]]


class LabelWordClassifier(nn.Module):
    """A language model (seq2seq or decoder-only) seen as a classifier.

    forward(input_ids, attention_mask) returns logits of shape (batch,
    classes): the summed log-probabilities of each class's target tokens
    after the prompt in `input_ids` (padded on either side).

    Seq2seq: the prompt is encoded once; the decoder runs once per class on a
    batch repeated `classes` times (label words are a few tokens, so the
    decoder passes cost little next to the encoder's). Decoder-only: the
    prompt runs once and its key/value cache is repeated per class, so only
    the answers' tokens after the first run again.
    """

    def __init__(self, lm: nn.Module, targets: Sequence[Sequence[int]]):
        super().__init__()
        self.lm = lm
        longest = max(len(t) for t in targets)
        ids = torch.zeros(len(targets), longest, dtype=torch.long)
        mask = torch.zeros(len(targets), longest, dtype=torch.bool)
        for k, target in enumerate(targets):
            ids[k, : len(target)] = torch.tensor(target)
            mask[k, : len(target)] = True
        self.register_buffer("target_ids", ids, persistent=False)
        self.register_buffer("target_mask", mask, persistent=False)

    @property
    def config(self):
        return self.lm.config

    @property
    def num_labels(self) -> int:
        return self.target_ids.shape[0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any):
        from transformers.modeling_outputs import SequenceClassifierOutput

        scores = self.score(input_ids, attention_mask)
        loss = None if labels is None else nn.functional.cross_entropy(scores, labels)
        return SequenceClassifierOutput(loss=loss, logits=scores)

    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if is_causal_lm(self.lm):
            return self._causal_score(input_ids, attention_mask)
        return self._seq2seq_score(input_ids, attention_mask)

    def _seq2seq_score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        batch, classes = input_ids.shape[0], self.num_labels
        hidden = self.lm.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.repeat_interleave(classes, dim=0)
        mask = attention_mask.repeat_interleave(classes, dim=0)
        target_ids = self.target_ids.repeat(batch, 1)
        target_mask = self.target_mask.repeat(batch, 1)
        labels = target_ids.masked_fill(~target_mask, IGNORE_INDEX)
        decoder_input_ids = self.lm.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = self.lm(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=mask,
                         decoder_input_ids=decoder_input_ids).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        picked = log_probs.gather(-1, target_ids.unsqueeze(-1)).squeeze(-1)
        return (picked * target_mask).sum(-1).view(batch, classes)

    def _causal_score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, classes = input_ids.shape[0], self.num_labels
        # Every row is packed to the right end (padding first, whichever side the tokenizer padded
        # on), so each prompt's last token, whose logits give the answer's first token, is the last
        # position: only that position's logits are computed (a vocabulary of 50k makes the full
        # logits of a batch gigabytes). Positions count from each row's first real token.
        input_ids, mask = pack(input_ids, attention_mask, to="right")
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        follow = self.target_ids.shape[1] > 1
        accepts = forward_parameters(self.lm)
        out = self.lm(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=follow,
                      **({"logits_to_keep": 1} if "logits_to_keep" in accepts else {}))
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        scores = first[:, self.target_ids[:, 0]]  # (batch, classes)
        if not follow:
            return scores
        # The answers' later tokens: each row's cache repeated once per class (row b * classes + k
        # is class k), each class's tokens but its last fed, and every one scored.
        cache = out.cache if "cache" in accepts else out.past_key_values  # renamed in transformers 5.2x
        cache.batch_repeat_interleave(classes)
        fed = self.target_ids[:, :-1].repeat(batch, 1)
        fed_mask = self.target_mask[:, :-1].repeat(batch, 1).long()
        lengths = mask.sum(-1).repeat_interleave(classes)
        logits = self.lm(input_ids=fed, attention_mask=torch.cat([mask.repeat_interleave(classes, 0), fed_mask], 1),
                         position_ids=lengths[:, None] + torch.arange(fed.shape[1], device=fed.device),
                         use_cache=False, **{"cache" if "cache" in accepts else "past_key_values": cache}).logits
        later = torch.log_softmax(logits.float(), dim=-1).gather(
            -1, self.target_ids[:, 1:].repeat(batch, 1).unsqueeze(-1)).squeeze(-1)
        return scores + (later * self.target_mask[:, 1:].repeat(batch, 1)).sum(-1).view(batch, classes)


def is_causal_lm(model: nn.Module) -> bool:
    """A decoder-only LM (its label words follow the prompt) rather than an encoder-decoder."""
    return not getattr(model.config, "is_encoder_decoder", False)


def forward_parameters(lm: nn.Module) -> set[str]:
    """The keyword arguments the language model's own forward names (through a peft wrapper):
    logits_to_keep, and `cache` or its older name past_key_values."""
    import inspect

    inner = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return set(inspect.signature(inner.forward).parameters)


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, to: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's real tokens moved, in order, to the right end (padding first) or the left (padding
    last), whatever padding they came with; a stable sort of the mask does it."""
    real = attention_mask.long() if to == "right" else (attention_mask == 0).long()
    order = torch.argsort(real, dim=1, stable=True)
    return input_ids.gather(1, order), attention_mask.gather(1, order)


def append_answers(inputs: dict[str, Any], shift: bool = False) -> dict[str, Any]:
    """A decoder-only LM's training batch: each prompt followed by its gold answer's tokens.

    `inputs` is the label-word batch (input_ids and attention_mask: the prompt; labels: the gold
    class's target tokens, padded with IGNORE_INDEX), as seq2seq models train on it. Each row
    becomes its prompt's tokens then its answer's, padded on the right, with labels only on the
    answer, so the causal LM loss is the loss of the gold class's words given the prompt (what
    the scores compare; cross-entropy over the classes' scores would need every class's answer
    run, a forward pass per class, for the same ranking signal). `shift`: labels moved one place
    left, aligned with the logits that predict them, for a loss function that does not shift as
    transformers' causal LM loss does (losses.WeightedLoss).
    """
    ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    answered = labels != IGNORE_INDEX
    answers = labels.masked_fill(~answered, 0)
    joined_ids = torch.cat([ids, answers], 1)
    joined_mask = torch.cat([mask.long(), answered.long()], 1)
    joined_labels = torch.cat([torch.full_like(ids, IGNORE_INDEX), labels.masked_fill(~answered, IGNORE_INDEX)], 1)
    order = torch.argsort((joined_mask == 0).long(), dim=1, stable=True)  # real tokens first, in order
    joined_ids, joined_mask, joined_labels = (t.gather(1, order) for t in (joined_ids, joined_mask, joined_labels))
    if shift:
        joined_labels = torch.cat([joined_labels[:, 1:], torch.full_like(joined_labels[:, :1], IGNORE_INDEX)], 1)
    rest = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "labels", "position_ids")}
    return {**rest, "input_ids": joined_ids, "attention_mask": joined_mask, "labels": joined_labels,
            "position_ids": (joined_mask.cumsum(-1) - 1).clamp(min=0)}


def classes_of(labels: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """The class id of each row of padded target `labels` (the inverse of label_targets)."""
    index = {tuple(t): k for k, t in enumerate(targets)}
    rows = [tuple(int(v) for v in row if v != IGNORE_INDEX) for row in labels.tolist()]
    missing = [r for r in rows if r not in index]
    if missing:
        raise ValueError(f"target {missing[0]} is no class's label words")
    return torch.tensor([index[r] for r in rows], dtype=torch.long, device=labels.device)
