import pytest

from textlora.config import apply_overrides, config_from_dict, load_config, parse_override
from textlora.errors import TextloraError


def test_defaults_are_valid():
    cfg = load_config()
    assert cfg.method == "lora" and cfg.lora.r == 8 and cfg.learning_rate == 5e-4


def test_method_default_learning_rates():
    assert config_from_dict({"method": "full"}).learning_rate == 3e-5
    assert config_from_dict({"method": "head"}).learning_rate == 1e-3
    assert config_from_dict({"method": "full", "train": {"learning_rate": 1e-4}}).learning_rate == 1e-4


def test_unknown_key_suggests_closest():
    with pytest.raises(TextloraError, match=r"unknown config key 'lora.alpah'; did you mean 'lora.alpha'"):
        config_from_dict({"lora": {"alpah": 3}})
    with pytest.raises(TextloraError, match="did you mean 'train'"):
        config_from_dict({"trian": {}})


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"lora": {"r": "eight"}}, "lora.r must be int"),
        ({"lora": {"r": 0}}, "lora.r must be a positive integer"),
        ({"lora": {"r": -4}}, "lora.r must be a positive integer"),
        ({"lora": {"dropout": 1.0}}, r"lora.dropout must be in \[0, 1\)"),
        ({"lora": {"dropout": -0.1}}, r"lora.dropout must be in \[0, 1\)"),
        ({"lora": {"alpha": 0}}, "lora.alpha must be > 0"),
        ({"train": {"learning_rate": 0}}, "learning_rate must be in"),
        ({"train": {"epochs": 0}}, "epochs must be > 0"),
        ({"train": {"batch_size": True}}, "batch_size must be int"),
        ({"method": "qlora"}, "unknown method 'qlora'"),
        ({"method": "lroa"}, "did you mean 'lora'"),
        ({"data": {"n_train": 0}}, "n_train must be >= 1"),
        ({"data": {"label_bins": {"neg": [5, 1]}}}, "min 5 > max 1"),
        ({"model": {"max_length": 2}}, "max_length must be >= 8"),
        ({"data": "imdb"}, "data must be a mapping"),
    ],
)
def test_invalid_values_name_the_key(raw, message):
    with pytest.raises(TextloraError, match=message):
        config_from_dict(raw)


def test_overrides_are_parsed_as_yaml():
    assert parse_override("lora.r=16") == (["lora", "r"], 16)
    assert parse_override("lora.target_modules=[q, v]") == (["lora", "target_modules"], ["q", "v"])
    raw = apply_overrides({"lora": {"r": 4}}, ["lora.r=32", "train.epochs=1"])
    cfg = config_from_dict(raw)
    assert cfg.lora.r == 32 and cfg.train.epochs == 1
    with pytest.raises(TextloraError, match="key=value"):
        parse_override("lora.r")


def test_recipe_file_errors(tmp_path):
    with pytest.raises(TextloraError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora: [unclosed\n")
    with pytest.raises(TextloraError, match="not valid YAML"):
        load_config(bad)
    good = tmp_path / "my-run.yaml"
    good.write_text("lora:\n  r: 4\n")
    assert load_config(good).name == "my-run"
