"""Long reviews: IMDB accuracy of each truncation strategy at the same max_length.

    python benchmarks/truncation.py --data ../shared/data/imdb --max-length 128 --train-rows 4000 --test-rows 4000

The same textlora run (packaged MiniLM, LoRA on all linear layers, the same
rows, seed and steps per text) three times, changing only model.truncation:
- head: the first max_length tokens;
- head_tail: the first --head-tokens and the last max_length - head_tokens
  (Sun et al. 2019: 128 + 382 best on IMDB at 512);
- chunks: overlapping windows covering the whole review, trained on every
  window, a review's logits the mean of its windows' (more windows: more
  compute, reported as such).
Short max_length makes most IMDB reviews long (median 235 tokens), so the
strategies differ most. Writes benchmarks/results/truncation.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

STRATEGIES = ("head", "head_tail", "chunks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--head-tokens", type=int, default=32)
    parser.add_argument("--chunk-overlap", type=int, default=16)
    parser.add_argument("--train-rows", type=int, default=4000)
    parser.add_argument("--test-rows", type=int, default=4000)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "truncation.json")
    args = parser.parse_args()

    import transformers

    from textlora.config import config_from_dict
    from textlora.pipeline import run_experiment

    transformers.logging.set_verbosity_error()
    rows = []
    for strategy in STRATEGIES:
        raw = {
            "name": strategy, "seed": args.seed, "method": "lora", "baselines": [],
            "data": {"source": str(args.data), "label_names": ["negative", "positive"], "clean_html": True,
                     "n_train": args.train_rows, "n_eval": args.test_rows, "validation_size": 200},
            "model": {"name": "packaged:minilm", "max_length": args.max_length, "truncation": strategy,
                      "head_tokens": args.head_tokens, "chunk_overlap": args.chunk_overlap},
            "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear", "modules_to_save": ["pooler"]},
            "train": {"epochs": args.epochs, "learning_rate": args.lr, "batch_size": 16, "eval_batch_size": 128},
        }
        print(f"{strategy} ...", flush=True)
        with tempfile.TemporaryDirectory() as out:
            run = run_experiment(config_from_dict({**raw, "output_dir": out}), quiet=True, say=lambda *_: None)
            metrics = json.loads((run / "metrics.json").read_text())
        final, timing = metrics["final"], metrics["timing"]
        rows.append({
            "truncation": strategy, "test_accuracy": final["accuracy"], "test_f1": final["f1"],
            "test_roc_auc": final["roc_auc"], "test_reviews": final["n"],
            "train_seconds": timing["train_seconds"], "score_seconds": final["seconds"],
            "share_of_train_reviews_longer_than_max_length": metrics["data"]["token_lengths"]["truncated_share"],
        })
        print(f"  accuracy {final['accuracy']:.4f}, trained {timing['train_seconds'] / 60:.1f} min, "
              f"scored {final['n']} reviews in {final['seconds']:.0f} s", flush=True)
    write_result(args.out, {"benchmark": "truncation", "max_length": args.max_length, "head_tokens": args.head_tokens,
                            "chunk_overlap": args.chunk_overlap, "train_rows": args.train_rows,
                            "epochs": args.epochs, "results": rows})


if __name__ == "__main__":
    main()
