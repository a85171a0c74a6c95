"""ServeSettings: the batching, request limits and model options of one server."""

from dataclasses import dataclass
from typing import Optional

from textlora.errors import TextloraError

DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ServeSettings:
    """Batching and request limits of one server."""

    max_batch: int = 64
    """Texts gathered from concurrent requests into one round of inference."""
    pass_size: int = 16
    """Texts per forward pass within a round: the round is sorted by length
    first, so each pass pads its texts only to a similar length."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for company."""
    batching: bool = True
    """False: one forward pass per request (the benchmark's comparison)."""
    max_texts: int = 128
    """Texts per request."""
    max_chars: int = 10_000
    """Characters per text: longer texts are truncated to the model's max_length
    anyway, but tokenizing them first costs time."""
    max_body_bytes: int = 2 * 2**20
    """Request body size."""
    max_queue: int = 4096
    """Texts waiting for the model; above it requests get 503 (back-pressure)."""
    token: Optional[str] = None
    """When set, /v1/* needs `Authorization: Bearer <token>`."""
    precision: str = "fp32"
    """fp32 | bf16 | auto: the model's precision (textlora.predict.inference_precision)."""
    backend: Optional[str] = None
    """torch | onnx (textlora.predict.Predictor.from_run); default torch, or onnx when `onnx` is set."""
    onnx: Optional[str] = None
    """The run's ONNX export (`textlora export RUN --onnx DIR`), for backend onnx."""

    def __post_init__(self) -> None:
        for name in ("max_batch", "pass_size", "max_texts", "max_chars", "max_body_bytes", "max_queue"):
            if getattr(self, name) < 1:
                raise TextloraError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_wait_ms < 0:
            raise TextloraError("--max-wait-ms must be 0 or more")
        if self.token is not None and not self.token.strip():
            raise TextloraError("--token is empty; give a non-empty token or leave it out")
