"""Classification by label words: a language model scores each class's words after a prompt.

Flan-T5 classifies text-to-text: "Classify this text as negative, neutral or
positive:\\n<review>" -> "positive". Rather than generating an answer and
parsing it (seed 004 took a softmax over generated outputs), every class's
label words are scored: their log-likelihood given the prompt,
log p(words_c | prompt), summed over their tokens. A softmax over these
scores gives per-class probabilities that sum to 1 and a confidence that
means something. The same scores before training are the zero-shot
baseline; training minimises the ordinary seq2seq LM loss of the gold
class's words (transformers computes it from `labels`).

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


@dataclass(frozen=True)
class Prompt:
    """The prompt template (with {labels} filled in) and one answer per class."""

    template: str
    words: list[str]

    @classmethod
    def build(cls, prompt_cfg: PromptConfig, label_names: Sequence[str]) -> "Prompt":
        words = [w.strip() for w in (prompt_cfg.label_words or label_names)]
        if len(words) != len(label_names):
            raise TextloraError(
                f"prompt.label_words has {len(words)} words for {len(label_names)} classes {list(label_names)}; "
                "give one per class, in label order"
            )
        listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
        # Only {labels} is filled now; {text} stays for each text.
        return cls(template=prompt_cfg.template.replace("{labels}", listed), words=words)

    def render(self, text: str) -> str:
        return self.template.replace("{text}", text)

    def as_dict(self) -> dict[str, Any]:
        return {"template": self.template, "words": list(self.words)}


def label_targets(tokenizer, words: Sequence[str]) -> list[list[int]]:
    """Token ids the decoder must produce for each class (T5: the word's tokens and </s>)."""
    targets = [list(tokenizer(word)["input_ids"]) for word in words]
    if any(not t for t in targets):
        raise TextloraError(f"a label word tokenizes to nothing: {list(words)}; choose other prompt.label_words")
    if len({tuple(t) for t in targets}) != len(targets):
        raise TextloraError(f"two label words tokenize alike: {list(words)}; choose distinct prompt.label_words")
    return targets


def encode_prompts(tokenizer, texts: Sequence[str], prompt: Prompt, model_cfg: ModelConfig) -> dict[str, list[list[int]]]:
    """Token ids of each text inside the prompt, the *text* truncated so the whole prompt fits.

    Truncating the rendered prompt would cut the instruction's end (or an
    answer cue after the text); instead each text is cut at a token boundary
    (character offsets from the fast tokenizer), keeping its head, or its head
    and tail with truncation: head_tail, and only then rendered.
    """
    texts = list(texts)
    frame = len(tokenizer(prompt.render(""))["input_ids"])
    budget = model_cfg.max_length - frame
    if budget < 8:
        raise TextloraError(
            f"the prompt takes {frame} of model.max_length {model_cfg.max_length} tokens, leaving no room for "
            "the text; raise model.max_length or shorten prompt.template"
        )
    pieces = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    fitted = [_cut(text, offsets, budget, model_cfg) for text, offsets in zip(texts, pieces)]
    encoded = dict(tokenizer([prompt.render(t) for t in fitted], truncation=True, max_length=model_cfg.max_length))
    encoded.pop("token_type_ids", None)
    return encoded


def _cut(text: str, offsets: Sequence[tuple[int, int]], budget: int, model_cfg: ModelConfig) -> str:
    if len(offsets) <= budget:
        return text
    if model_cfg.truncation == "head_tail":
        head = min(model_cfg.head_tail_split, budget - 1)
        tail = budget - head
        return text[: offsets[head - 1][1]] + " " + text[offsets[-tail][0]:]
    return text[: offsets[budget - 1][1]]


class LabelWordClassifier(nn.Module):
    """A seq2seq language model seen as a classifier.

    forward(input_ids, attention_mask) returns logits of shape (batch,
    classes): the summed log-probabilities of each class's target tokens. The
    prompt is encoded once; the decoder runs once per class on a batch
    repeated `classes` times (label words are a few tokens, so the decoder
    passes cost little next to the encoder's).
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
        from transformers.modeling_outputs import BaseModelOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
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


def classes_of(labels: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """The class id of each row of padded target `labels` (the inverse of label_targets)."""
    index = {tuple(t): k for k, t in enumerate(targets)}
    rows = [tuple(int(v) for v in row if v != IGNORE_INDEX) for row in labels.tolist()]
    missing = [r for r in rows if r not in index]
    if missing:
        raise ValueError(f"target {missing[0]} is no class's label words")
    return torch.tensor([index[r] for r in rows], dtype=torch.long, device=labels.device)
