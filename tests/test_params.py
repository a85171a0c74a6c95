"""`textlora params`: parameter accounting from a config alone (meta device, no weights)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from textlora.cli import main
from textlora.params import BUILTIN_CONFIGS, load_model_config, parameter_table

# Seed 000's printed rank table: bert-base-uncased, LoRA on query + value, 2 labels.
SEED000 = {4: (148_994, 109_632_772), 8: (296_450, 109_780_228), 16: (591_362, 110_075_140),
           32: (1_181_186, 110_664_964)}
SEED000_BEFORE = 109_483_778


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter, as a user runs it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "textlora.cli", "params", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_seed000_rank_table_through_the_cli():
    result = cli("bert-base-uncased", "--r", "4,8,16,32")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"{SEED000_BEFORE:,} parameters before adaptation" in lines[0]
    rows = {}
    for line in lines:
        cells = line.split()
        if cells and cells[0] == "lora":
            method, r, targets, trainable, total, percent = cells
            assert targets == "query,value"
            rows[int(r)] = (number(trainable), number(total))
            assert float(percent) == pytest.approx(100 * number(trainable) / number(total), abs=1e-4)
    assert rows == SEED000


def test_json_output_and_every_method(capsys):
    assert main(["params", "bert-base-uncased", "--method", "lora,dora,ia3,full,head", "--r", "8", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["before"] == SEED000_BEFORE and table["objective"] == "classifier"
    rows = {row["method"]: row for row in table["rows"]}
    assert (rows["lora"]["trainable"], rows["lora"]["total"]) == SEED000[8]
    # DoRA adds one magnitude per output feature of each adapted layer: 24 layers x 768.
    assert rows["dora"]["trainable"] == SEED000[8][0] + 24 * 768
    # head: the pooler-fed classifier alone (768 x 2 + 2); full: everything.
    assert rows["head"]["trainable"] == 768 * 2 + 2 and rows["head"]["total"] == SEED000_BEFORE
    assert rows["full"]["trainable"] == rows["full"]["total"] == SEED000_BEFORE
    # IA3 (keys, values, feed-forward output): one vector per layer each, 768 + 768 + 768 + 3072 wide.
    assert rows["ia3"]["trainable"] == 12 * (768 * 3 + 3072) + 768 * 2 + 2
    assert rows["ia3"]["r"] is None and rows["ia3"]["targets"] == "key,output.dense,value"


def test_builtin_configs_match_transformers_defaults():
    """The built-in values are the architectures the brief names (checked against transformers' classes)."""
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    expected = {
        "bert-base-uncased": BertConfig(), "distilbert-base-uncased": DistilBertConfig(),
        "roberta-base": RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1),
    }
    for name, reference in expected.items():
        built, _ = load_model_config(name)
        for key in BUILTIN_CONFIGS[name]:
            assert getattr(built, key) == getattr(reference, key), (name, key)


def test_flan_t5_counts_its_untied_lm_head():
    """Flan-T5 is counted as a seq2seq LM with its own LM head (tie_word_embeddings: false)."""
    table = parameter_table("google/flan-t5-base", methods=["lora", "full"], ranks=[16],
                            overrides=["lora.target_modules=[q, v, o]"])
    assert table.objective == "seq2seq"
    # 247,577,856 is google/flan-t5-base's published size: embeddings and LM head both 32128 x 768.
    assert table.before == 247_577_856
    lora, full = table.rows
    # 16 x (768 + 768) per adapted projection: q, v, o in 12 encoder self-attentions and 12 decoder
    # self- and 12 cross-attentions; no head (label words use the frozen LM head).
    assert lora.trainable == 16 * (768 + 768) * 3 * 36
    assert lora.total == table.before + lora.trainable
    assert full.trainable == full.total == table.before


def test_seed001_recipe_through_the_library():
    table = parameter_table("roberta-base", recipe="recipes/seed001-imdb-roberta-rslora.yaml")
    assert table.before == 124_647_170 and [row.trainable for row in table.rows] == [2_410_442]


def test_local_folder_and_config_json(tiny_bert_dir, tmp_path, capsys):
    """A model folder, or its config.json alone, counts what the real model with weights has."""
    import shutil

    from transformers import AutoModelForSequenceClassification

    from textlora.config import load_config
    from textlora.models import apply_method, count_parameters

    real = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    plain = count_parameters(real).total
    adapted = count_parameters(apply_method(load_config(None, ["lora.r=4"]), real, []))
    config_only = tmp_path / "config.json"
    shutil.copy(f"{tiny_bert_dir}/config.json", config_only)
    for given in (tiny_bert_dir, str(config_only)):
        table = parameter_table(given, ranks=[4], labels=3)
        assert table.before == plain
        assert (table.rows[0].trainable, table.rows[0].total) == (adapted.trainable, adapted.total)
    assert main(["params", str(config_only), "--r", "4", "--labels", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"][0]["trainable"] == adapted.trainable and printed["labels"] == 3


@pytest.mark.parametrize("args, message", [
    (["bert-base-uncasd"], "did you mean 'bert-base-uncased'"),
    (["./no/such/model"], "does not exist"),
    (["bert-base-uncased", "--r", "0"], "--r '0' must be comma-separated positive integers"),
    (["bert-base-uncased", "--method", "lorra"], "did you mean 'lora'"),
    (["bert-base-uncased", "--targets", "nothing"], "match nothing in this model"),
    (["bert-base-uncased", "--labels", "1"], "--labels must be >= 2"),
])
def test_user_errors_are_one_line(args, message, capsys):
    assert main(["params", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_bad_model_through_the_real_cli():
    result = cli("no/such/model/anywhere")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")


def test_untied_lm_head_is_read_from_a_local_config(tmp_path):
    """A Flan-T5 config.json saying tie_word_embeddings: false counts its own LM head from a folder too."""
    (tmp_path / "config.json").write_text(json.dumps(BUILTIN_CONFIGS["google/flan-t5-base"]))
    assert parameter_table(str(tmp_path), methods=["full"]).before == 247_577_856
    tied = {**BUILTIN_CONFIGS["google/flan-t5-base"], "tie_word_embeddings": True}
    (tmp_path / "config.json").write_text(json.dumps(tied))
    assert parameter_table(str(tmp_path), methods=["full"]).before == 247_577_856 - 32128 * 768
