"""The model card is a Hugging Face model card: huggingface_hub parses its metadata, and its
model-index holds the test numbers of what ships, equal to the run record's."""

from __future__ import annotations

import dataclasses

import pytest
from huggingface_hub import ModelCard

from textlora.card import hub_id, model_card
from textlora.config import config_from_dict
from textlora.runs import open_run

PEFT_TEMPLATE = "More Information Needed"  # what peft's save_pretrained writes as README.md


def parsed(text: str) -> ModelCard:
    card = ModelCard(text, ignore_metadata_errors=False)  # a malformed model-index raises here
    assert text.startswith("---\n")
    return card


def run_parts(run_path):
    run = open_run(run_path)
    return config_from_dict(run.config()), run.info, run.record()


def check_results(card: ModelCard, record, n_results: int = 3) -> None:
    row = record.shipped_row
    results = {r.metric_type: r for r in card.data.eval_results}
    assert len(card.data.eval_results) == n_results and set(results) == {"accuracy", "f1", "roc_auc"}
    for key, metric in (("accuracy", "accuracy"), ("f1_macro", "f1"), ("roc_auc", "roc_auc")):
        result = results[metric]
        assert result.metric_value == pytest.approx(row[key], abs=5e-5)
        low, high = row["intervals"][key]
        assert f"[{low:.4f}, {high:.4f}]" in result.metric_name and f"{row['n']:,} rows" in result.metric_name
        assert result.task_type == "text-classification" and result.verify_token is None
    assert results["f1"].metric_config == "macro"


def test_run_card_parses_as_a_hub_model_card(tiny_run):
    cfg, info, record = run_parts(tiny_run)
    text = (tiny_run / "README.md").read_text()
    card = parsed(text)
    data = card.data
    assert data.library_name == "peft" and data.pipeline_tag == "text-classification"
    assert data.tags == ["textlora", "text-classification", "lora"]
    assert data.metrics == ["accuracy", "f1", "roc_auc"]
    assert data.base_model is None and data.datasets is None  # a local tiny BERT and a local CSV
    assert data.model_name == "tiny" and card.data.to_dict()["model-index"][0]["name"] == "tiny"
    check_results(card, record)
    assert {r.dataset_name for r in data.eval_results} == {"reviews.csv"}
    assert {r.dataset_split for r in data.eval_results} == {"train (held-out rows)"}  # carved: the CSV has no test split
    # Today's body is kept under the metadata.
    body = card.text
    assert body.lstrip().startswith("# tiny") and "## Results on the" in body and "## Cost" in body
    assert all(line in body for line in record.verdicts())
    assert "textlora predict" in body and text == model_card(cfg, info, record)


def test_hub_ids_become_base_model_and_datasets(tiny_run):
    """A run of a hub model on a hub dataset names both; a full run is a transformers model."""
    cfg, info, record = run_parts(tiny_run)
    hub_cfg = dataclasses.replace(
        cfg, method="full",
        model=dataclasses.replace(cfg.model, name="sentence-transformers/all-MiniLM-L6-v2"),
        data=dataclasses.replace(cfg.data, source="stanfordnlp/imdb", subset="plain_text"))
    card = parsed(model_card(hub_cfg, {**info, "method": "full", "artifact": "model"}, record, where="artifact"))
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.datasets == ["stanfordnlp/imdb"] and card.data.library_name == "transformers"
    assert card.data.tags == ["textlora", "text-classification", "full"]
    assert {(r.dataset_type, r.dataset_config) for r in card.data.eval_results} == {("stanfordnlp/imdb", "plain_text")}
    check_results(card, record)
    assert "AutoModelForSequenceClassification.from_pretrained(\"THIS_FOLDER_OR_REPO_ID\")" in card.text


@pytest.mark.parametrize("name, expected", [
    ("bert-base-uncased", "bert-base-uncased"), ("stanfordnlp/imdb", "stanfordnlp/imdb"),
    ("packaged:minilm", None), ("packaged:drugscom", None), ("./models/x", None), ("/abs/path/model", None),
    ("reviews.csv", None), ("a/b/c", None), ("", None),
])
def test_hub_id(name, expected):
    assert hub_id(name) == expected


def test_adapter_folder_ships_the_card(tiny_run):
    """adapter/README.md is the hub card with peft loading code, not peft's empty template."""
    text = (tiny_run / "adapter" / "README.md").read_text()
    assert PEFT_TEMPLATE not in text
    card = parsed(text)
    check_results(card, run_parts(tiny_run)[2])
    assert "PeftModel.from_pretrained" in card.text and card.data.library_name == "peft"


def test_export_adapter_is_ready_to_upload(tiny_run, tmp_path):
    """`textlora export RUN --adapter OUT`: what huggingface_hub.upload_folder needs, the card as
    README.md (regenerated from the record, whatever the run folder holds). Nothing is pushed."""
    from textlora.export import export_run

    out = export_run(tiny_run, tmp_path / "upload", kind="adapter")
    names = {p.name for p in out.iterdir()}
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "config.json",
            "tokenizer_config.json"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith(".bin")]
    text = (out / "README.md").read_text()
    assert PEFT_TEMPLATE not in text
    card = parsed(text)
    cfg, info, record = run_parts(tiny_run)
    check_results(card, record)
    assert text == model_card(cfg, info, record, where="artifact")
