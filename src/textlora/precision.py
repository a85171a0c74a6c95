"""Numeric precision: what `auto` means on this machine, for training and for inference.

Its own small module so that inference (predict, serve) never imports the training code.
"""

from __future__ import annotations

import torch

from textlora.config import PRECISIONS
from textlora.errors import TextloraError


def resolve_precision(requested: str) -> str:
    """fp32 | bf16 | auto -> the precision to run in; auto is bf16 only where bf16 matmuls run
    natively (CUDA, AVX512-BF16 / AMX CPUs): emulated bf16 is slower than fp32."""
    if requested not in PRECISIONS:
        raise TextloraError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    except (AttributeError, RuntimeError):
        return "fp32"


def cast_for_inference(model, precision: str):
    """The model in the precision asked for (bf16: every weight, adapters and head included)."""
    if resolve_precision(precision) == "bf16":
        return model.to(torch.bfloat16)
    return model


def hold_frozen_weights_in_bf16(model: torch.nn.Module) -> int:
    """Cast the frozen weights of Linear layers to bf16 once, so autocast has nothing to re-cast
    each step (and the frozen base takes half the memory).

    Only Linear layers: autocast casts their weights to bf16 for its matmuls anyway, so holding
    them in bf16 changes no number (benchmarks/results/train_ablation_speed.json, numerics: the
    same logit error against fp32 as autocast alone, 0.61 % at 256 tokens). LayerNorm and embedding
    weights held in bf16 (textlora before 2026-11-28) made the LayerNorm outputs, and with them the
    residual stream, bf16 (0.89 %) for no measurable speed (same file: 24.6 vs 23.8 samples/s at
    256 tokens, 15.2 vs 15.8 at 512, one seed).
    Trainable parameters (adapter, head) and so the optimizer state stay fp32.
    Returns how many parameters were cast.
    """
    cast = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            for param in module.parameters(recurse=False):
                if not param.requires_grad and param.dtype == torch.float32:
                    param.data = param.data.to(torch.bfloat16)
                    cast += param.numel()
    return cast
