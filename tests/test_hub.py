"""The hub code paths, without a network: a populated Hugging Face cache for the model, and a
loopback stand-in for the hub (tests/hub_server.py) for the dataset, driven through the real
`textlora train` entry point in a subprocess (huggingface_hub reads HF_ENDPOINT at import)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import synthetic_reviews
from hub_server import HubServer

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
DATASET_ID = "stanfordnlp/imdb"
IMDB_CARD = """---
dataset_info:
  config_name: plain_text
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': neg
          '1': pos
configs:
- config_name: plain_text
  data_files:
  - split: train
    path: plain_text/train-*
  - split: test
    path: plain_text/test-*
  default: true
---
# IMDB (a few synthetic rows served by tests/hub_server.py)
"""


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, minilm_dir) -> Path:
    """HF_HUB_CACHE holding the packaged MiniLM under its hub id, laid out as huggingface_hub
    writes it: models--ORG--NAME/refs/main naming a commit, snapshots/<commit>/ the files."""
    cache = tmp_path_factory.mktemp("hf-cache")
    repo = cache / f"models--{MODEL_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(MODEL_REVISION)
    snapshot = repo / "snapshots" / MODEL_REVISION
    source = Path(minilm_dir)
    for file in source.rglob("*"):
        if file.is_file():
            target = snapshot / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(file)
    return cache


def parquet_bytes(frame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def imdb_files() -> dict[str, bytes]:
    """The layout of stanfordnlp/imdb (card + plain_text/*.parquet), label 0/1 named neg/pos by the card."""
    def rows(n: int, seed: int):
        frame = synthetic_reviews(n, seed)
        frame["label"] = (frame["label"] == "positive").astype("int64")
        return frame

    return {"README.md": IMDB_CARD.encode(),
            "plain_text/train-00000-of-00001.parquet": parquet_bytes(rows(64, 1)),
            "plain_text/test-00000-of-00001.parquet": parquet_bytes(rows(32, 2))}


@pytest.fixture()
def hub(hf_cache, minilm_dir):
    with HubServer() as server:
        server.add_dataset(DATASET_ID, imdb_files())
        server.add_model(MODEL_ID, minilm_dir, MODEL_REVISION)
        server.add_error("dataset", "someone/no-such-dataset", 404, "RepoNotFound", "Repository not found")
        server.add_error("dataset", "someone/gated-dataset", 401, "GatedRepo",
                         "Access to dataset someone/gated-dataset is restricted. You must be authenticated.")
        server.add_error("model", "someone/gated-model", 401, "GatedRepo", "Access restricted")
        yield server


def textlora(args: list[str], hub: HubServer, hf_cache: Path, home: Path, timeout: int = 240):
    env = {**os.environ, **hub.environment(), "HF_HUB_CACHE": str(hf_cache), "HF_HOME": str(home),
           "HF_DATASETS_CACHE": str(home / "datasets"), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("HF_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "textlora.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=home)


def test_cached_hub_model_resolves_offline(hf_cache, minilm_dir, monkeypatch):
    """HF_HUB_OFFLINE=1 (conftest) and the id in the cache: loaded by huggingface_hub from the
    snapshot, the same weights as the packaged folder."""
    import huggingface_hub.constants
    import torch
    from safetensors.torch import load_file

    from textlora.models import load_classifier, load_tokenizer, resolve_model_source

    if not huggingface_hub.constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE was not set when huggingface_hub was imported")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_cache))
    assert resolve_model_source(MODEL_ID) == MODEL_ID  # a hub id, not a path
    tokenizer = load_tokenizer(MODEL_ID)
    assert tokenizer("a good film")["input_ids"][:2] == [101, 1037]
    model, fresh = load_classifier(MODEL_ID, ["neg", "pos"])
    assert model.config._name_or_path == MODEL_ID and model.config.id2label == {0: "neg", 1: "pos"}
    assert fresh == ["classifier"]  # only the head is new
    packaged = load_file(str(Path(minilm_dir) / "model.safetensors"))
    key = next(k for k in packaged if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, packaged[key])


def test_train_from_hub_model_and_dataset_ids(hub, hf_cache, tmp_path):
    """`textlora train --model HUB_ID --data HUB_ID`, recipe-less and quick, through the cache and
    the loopback hub, writes a finished run with the hub's label names and a hub model card."""
    result = textlora(["train", "--model", MODEL_ID, "--data", DATASET_ID, "--quick", "--quiet",
                       "--set", "data.n_train=32", "--set", "data.n_eval=16", "--set", "baselines=[tfidf]",
                       "--name", "hub", "--output-dir", str(tmp_path / "runs")], hub, hf_cache, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "hub"
    info = json.loads((run / "run.json").read_text())
    assert info["finished"] and info["base_model"] == MODEL_ID
    assert info["label_names"] == ["neg", "pos"]  # the ClassLabel names the dataset card declares
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["splits"]["test"]["rows"] == 16 and metrics["data"]["splits"]["train"]["rows"] == 32
    card = (run / "README.md").read_text()
    assert f"base_model: {MODEL_ID}" in card and f"- {DATASET_ID}" in card

    seen = [(method, path.split("?")[0]) for method, path, _ in hub.requests]
    dataset_files = {p.rsplit("/", 1)[-1] for m, p in seen if m == "GET" and p.startswith(f"/datasets/{DATASET_ID}/resolve/")}
    assert dataset_files == {"README.md", "train-00000-of-00001.parquet", "test-00000-of-00001.parquet"}
    # The model came out of the populated cache: the hub was asked about it, never for its files.
    assert (("GET", f"/api/models/{MODEL_ID}") in seen
            and not any(m == "GET" and p.startswith(f"/{MODEL_ID}/resolve/") for m, p in seen))
    assert not [r for r in hub.requests if r[2] == 404 and "no such route" in r[1]]


# The console entry point's main(), once per case in one process (each process start costs
# seconds of imports): it prints `error: ...` to stderr and returns the exit code, as `textlora` does.
DRIVER = """
import contextlib, io, json, sys
from textlora.cli import main
out = []
for args in json.loads(sys.argv[1]):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(args)
    out.append([code, stderr.getvalue()])
print(json.dumps(out))
"""

REFUSALS = [  # (arguments, what the one error line must say)
    (["--data", "someone/no-such-dataset"], ["hub dataset 'someone/no-such-dataset' was not found", "check the id"]),
    (["--data", "someone/gated-dataset"], ["hub dataset 'someone/gated-dataset' is gated", "hf auth login"]),
    (["--data", "someone/private-dataset"], ["refused dataset 'someone/private-dataset' (HTTP 401)", "hf auth login"]),
    (["--model", "someone/no-such-model"], ["hub model 'someone/no-such-model' was not found", "check the id"]),
    (["--model", "someone/gated-model"], ["hub model 'someone/gated-model' is gated", "hf auth login"]),
]


def test_hub_refusals_are_one_line(hub, hf_cache, tmp_path):
    """The hub answers 404 RepoNotFound, 401 GatedRepo or a bare 401: one `error:` line naming the
    id and the fix (check the id; log in with `hf auth login`), exit 2, no run folder."""
    hub.add_error("dataset", "someone/private-dataset", 401, "", "Unauthorized")
    runs = tmp_path / "runs"
    cases = [["train", *(args if "--model" in args else ["--model", "packaged:minilm", *args]),
              *([] if "--data" in args else ["--data", DATASET_ID]), "--quick", "--quiet", "--output-dir", str(runs)]
             for args, _ in REFUSALS]
    env = {**os.environ, **hub.environment(), "HF_HUB_CACHE": str(hf_cache), "HF_HOME": str(tmp_path)}
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True, text=True,
                          timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for (args, expected), (code, stderr) in zip(REFUSALS, json.loads(done.stdout.strip().splitlines()[-1])):
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
        assert all(words in lines[0] for words in expected), (args, lines[0])
    assert not runs.exists() or not any(runs.iterdir())
