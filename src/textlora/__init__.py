"""textlora: LoRA fine-tuning of transformers for text classification, measured honestly."""

from textlora.errors import TextloraError

__version__ = "0.1.0"

__all__ = ["TextloraError", "__version__"]
