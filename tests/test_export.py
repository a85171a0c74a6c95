"""`textlora export`: merged models and adapters that plain transformers / peft load without textlora."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import train_tiny
from textlora.cli import main

TEXTS = ["a great and wonderful film", "the worst and most boring plot", "the movie was a story",
         "loved it , brilliant actor", "awful scene , dull and poor"]

# The loading side: a fresh interpreter that imports transformers and peft, never textlora.
LOADER = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    job = json.loads(sys.argv[1])
    out = {}
    for name, spec in job["exports"].items():
        tokenizer = AutoTokenizer.from_pretrained(spec["path"])
        if spec["kind"] == "merged":
            model = AutoModelForSequenceClassification.from_pretrained(spec["path"])
        else:
            from peft import PeftModel

            config = AutoConfig.from_pretrained(spec["path"])
            base = AutoModelForSequenceClassification.from_pretrained(spec["base"], config=config)
            model = PeftModel.from_pretrained(base, spec["path"])
        model.eval()
        batch = tokenizer(job["texts"], padding=True, truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(model(**batch).logits.double(), dim=-1)
        out[name] = {"probs": probs.tolist(), "id2label": {str(k): v for k, v in model.config.id2label.items()},
                     "files": sorted(p.name for p in __import__("pathlib").Path(spec["path"]).iterdir())}
    out["textlora_imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "textlora")
    print(json.dumps(out))
""")


def load_without_textlora(exports: dict[str, dict], tmp_path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", LOADER, json.dumps({"exports": exports, "texts": TEXTS})],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded.pop("textlora_imported") == []
    return loaded


def run_probs(run: Path, merge: bool) -> np.ndarray:
    """The run's own model (adapter merged or not), fed the way the loader feeds the export."""
    import torch
    from transformers import AutoTokenizer

    from textlora.predict import load_run_model
    from textlora.runs import open_run

    model = load_run_model(open_run(run), merge=merge).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(run / "tokenizer"))
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(model(**batch).logits.double(), dim=-1).numpy()


@pytest.fixture(scope="module")
def runs(request, tiny_bert_dir, reviews_csv, tmp_path_factory) -> dict[str, Path]:
    """The shared LoRA run (conftest) and a full fine-tuning run."""
    full = train_tiny(tiny_bert_dir, reviews_csv, tmp_path_factory.mktemp("export-runs"), name="full", method="full",
                      baselines="[]", **{"train.epochs": 1, "data.n_train": 80})
    return {"lora": request.getfixturevalue("tiny_run"), "full": full}


@pytest.fixture()
def lora_run(runs) -> Path:
    return runs["lora"]


@pytest.fixture()
def full_run(runs) -> Path:
    return runs["full"]


def test_merged_and_adapter_exports_load_with_plain_libraries(lora_run, tiny_bert_dir, tmp_path):
    merged, adapter = tmp_path / "merged", tmp_path / "adapter"
    assert main(["export", str(lora_run), "--merged", str(merged)]) == 0
    assert main(["export", str(lora_run), "--adapter", str(adapter)]) == 0

    # The merge really folded the adapter in: the query weights differ from the base model's.
    from safetensors.torch import load_file

    base = load_file(str(Path(tiny_bert_dir) / "model.safetensors"))
    folded = load_file(str(merged / "model.safetensors"))
    key = "encoder.layer.0.attention.self.query.weight"
    base_key = next(k for k in base if k.endswith(key))
    assert (folded[f"bert.{key}"] - base[base_key]).abs().max() > 1e-4
    assert not any("lora" in k or "modules_to_save" in k or "base_layer" in k for k in folded)

    loaded = load_without_textlora({
        "merged": {"kind": "merged", "path": str(merged)},
        "adapter": {"kind": "adapter", "path": str(adapter), "base": tiny_bert_dir},
    }, tmp_path)
    unmerged = run_probs(lora_run, merge=False)
    assert not np.allclose(unmerged[:, 0], unmerged[0, 0])  # texts get different probabilities: not a constant
    np.testing.assert_allclose(np.array(loaded["merged"]["probs"]), unmerged, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.array(loaded["adapter"]["probs"]), unmerged, atol=1e-6, rtol=0)
    for name in ("merged", "adapter"):
        assert loaded[name]["id2label"] == {"0": "negative", "1": "positive"}
    files = loaded["merged"]["files"]
    assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth"))]
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "tokenizer.json"} <= set(
        loaded["adapter"]["files"])
    assert not list(tmp_path.glob(".*partial*"))


def test_full_run_exports_its_whole_model(full_run, tmp_path, capsys):
    out = tmp_path / "full-merged"
    assert main(["export", str(full_run), "--merged", str(out)]) == 0
    assert (out / "model.safetensors").read_bytes() == (full_run / "model" / "model.safetensors").read_bytes()
    loaded = load_without_textlora({"full": {"kind": "merged", "path": str(out)}}, tmp_path)
    np.testing.assert_allclose(np.array(loaded["full"]["probs"]), run_probs(full_run, merge=True), atol=1e-6, rtol=0)
    capsys.readouterr()
    assert main(["export", str(full_run), "--adapter", str(tmp_path / "adapter")]) == 2
    err = capsys.readouterr().err
    assert "method full" in err and "no adapter" in err and "--merged" in err
    assert not (tmp_path / "adapter").exists()


def test_existing_output_is_refused_without_overwrite(lora_run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(lora_run), "--merged", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert main(["export", str(lora_run), "--merged", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    # Never into the run folder itself, even with --overwrite.
    assert main(["export", str(lora_run), "--adapter", str(lora_run / "adapter"), "--overwrite"]) == 2
    assert "overlaps the run folder" in capsys.readouterr().err
    assert (lora_run / "adapter" / "adapter_model.safetensors").is_file()


def test_failed_export_leaves_nothing_behind(lora_run, tmp_path, monkeypatch):
    import textlora.export as export

    real = export._save_merged

    def save_then_fail(run, out, base_model):
        real(run, out, base_model)  # weights are on disk when it fails
        raise OSError("disk full")

    monkeypatch.setattr(export, "_save_merged", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export.export_run(lora_run, tmp_path / "out", "merged")
    assert list(tmp_path.iterdir()) == []


def test_label_word_run_exports_its_merged_language_model(tiny_t5_dir, reviews_csv, tmp_path):
    """A Flan-T5-style run: the merged seq2seq LM plus the prompt and label words that make it a classifier."""
    from transformers import AutoModelForSeq2SeqLM

    from textlora.labelwords import LabelWordClassifier
    from textlora.predict import Predictor

    run = train_tiny(tiny_t5_dir, reviews_csv, tmp_path / "runs", name="t5", baselines="[]",
                     **{"train.epochs": 1, "data.n_train": 48})
    out = tmp_path / "t5-merged"
    assert main(["export", str(run), "--merged", str(out)]) == 0
    words = json.loads((out / "label_words.json").read_text())
    assert words["label_names"] == ["negative", "positive"] and "{text}" in words["template"]
    lm = AutoModelForSeq2SeqLM.from_pretrained(str(out))
    predictor = Predictor.from_run(run)
    temperature = json.loads((out / "calibration.json").read_text())["temperature"]  # travels with the export
    assert temperature == predictor.temperature
    exported = Predictor(LabelWordClassifier(lm, words["target_ids"]), predictor.tokenizer, predictor.label_names,
                         predictor.model_cfg, prompt=predictor.prompt, temperature=temperature)
    np.testing.assert_allclose(exported.predict_probs(TEXTS), predictor.predict_probs(TEXTS), atol=1e-5, rtol=0)
