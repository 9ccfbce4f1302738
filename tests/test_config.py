"""Configuration that cannot silently mislead: required data_folder, matched widths, mixer options."""

import logging

import pytest

from brq_att_alt.hparams import load_hparams
from brq_att_alt.mixers import MIXERS, check_mixer_options, mixer_option_names, mixer_options
from brq_att_alt.sizes import D_MODEL
from helpers import REPO_ROOT as ROOT, load_script, logged_messages, tiny_model_args

PAPER_YAMLS = sorted(p for p in (ROOT / "hparams").glob("brq_*.yaml") if "tiny" not in p.name)


def load(yaml, tmp_path, *extra):
    return load_hparams([str(yaml), f"--output_folder={tmp_path}", *extra])[3]


# ------------------------------------------------------------------ data_folder
@pytest.mark.parametrize("yaml", PAPER_YAMLS, ids=lambda p: p.name)
def test_paper_yamls_require_data_folder(yaml, tmp_path):
    assert len(PAPER_YAMLS) == 12
    assert "data_folder: !PLACEHOLDER" in yaml.read_text()
    with pytest.raises(SystemExit) as err:
        load(yaml, tmp_path)
    message = str(err.value)
    assert "--data_folder=" in message and yaml.name in message


def test_tiny_yaml_keeps_the_synthetic_default(tmp_path):
    hp = load(ROOT / "hparams" / "brq_tiny.yaml", tmp_path)
    assert hp["dataset"] == "synthetic" and hp["data_folder"] == "data/synthetic_corpus"


def test_every_recipe_yaml_says_which_dataset(tmp_path):
    """One `dataset: synthetic | real` key in every recipe YAML; another value is a clear error."""
    recipe_yamls = list((ROOT / "hparams").glob("brq_*.yaml")) + list((ROOT / "recipes").rglob("hparams/*.yaml"))
    assert len(recipe_yamls) == 13 + 2 + 10  # pre-training, fine-tuning (tiny, LibriSpeech), MP3S
    for yaml in recipe_yamls:
        assert sum(line.startswith("dataset: ") for line in yaml.read_text().splitlines()) == 1, yaml
    for yaml in PAPER_YAMLS:
        assert "\ndataset: real\n" in yaml.read_text()
    with pytest.raises(SystemExit, match=r"dataset must be one of \('synthetic', 'real'\).*'LibriSpeech'"):
        load(ROOT / "hparams" / "brq_tiny.yaml", tmp_path, "--dataset=LibriSpeech")


def test_paper_yaml_with_data_folder_loads(tmp_path):
    hp = load(ROOT / "hparams" / "brq_pom.yaml", tmp_path, f"--data_folder={tmp_path}", "--num_layers=1")
    assert hp["data_folder"] == str(tmp_path) and hp["d_model"] == D_MODEL["pom"]["base"]


# --------------------------------------------------------------- mixer_options
def test_nested_override_is_merged_not_checked_by_hyperpyyaml(tmp_path):
    """HyperPyYAML merges a nested override into the YAML's mapping without checking its keys,
    which is why mixer_options validates every entry itself."""
    hp = load(ROOT / "hparams" / "brq_tiny.yaml", tmp_path, "--mixer_options={pom: {degree: 2}}",
              "--attention_type=pom")
    assert hp["mixer_options"]["pom"] == {"degree": 2, "expansion": 2, "causal": False, "groups": 2,
                                          "output_norm": True}
    assert hp["model"].encoder.layers[0].mixer.degree == 2
    assert set(hp["mixer_options"]) == set(MIXERS)  # the other mixers' entries are kept


@pytest.mark.parametrize("attention_type", ["mhsa", "pom", "mamba"])
def test_unknown_option_of_any_mixer_is_an_error(attention_type, tmp_path):
    """A typo in the options of a mixer other than the selected one is an error too."""
    with pytest.raises(ValueError, match=r"mixer 'pom' has no option 'degre'.*degree"):
        load(ROOT / "hparams" / "brq_tiny.yaml", tmp_path, "--mixer_options={pom: {degre: 2}}",
             f"--attention_type={attention_type}")


def test_unknown_mixer_in_mixer_options_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown mixer 'pomm'.*mhsa"):
        load(ROOT / "hparams" / "brq_tiny.yaml", tmp_path, "--mixer_options={pomm: {degree: 2}}")


def test_check_mixer_options_every_entry():
    good = {name: {option: None for option in mixer_option_names(name)} for name in MIXERS}
    check_mixer_options(good)  # every option of every mixer is accepted
    check_mixer_options({"fastformer": None})
    with pytest.raises(ValueError, match=r"'mamba' has no option 'd_sate'"):
        check_mixer_options({**good, "mamba": {"d_sate": 4}})
    with pytest.raises(ValueError, match=r"'summarymixing' has no option 'dropout'"):
        check_mixer_options({"summarymixing": {"dropout": 0.1}})  # common arguments are not options
    with pytest.raises(ValueError, match="mapping"):
        check_mixer_options({"pom": [3]})
    with pytest.raises(ValueError, match="hypermixing"):
        mixer_options({"mhsa": {}, "hypermixing": {"hypernet": 8}}, "mhsa")
    assert mixer_options({"pom": {"degree": 2}, "mhsa": None}, "mhsa") == {}


# ------------------------------------------------------------------ train.py log
def test_train_logs_mixer_width_and_parameters(tiny_corpus, tmp_path, monkeypatch):
    pretrain = load_script(ROOT / "train.py")

    class NoFitBrain(pretrain.BestRQBrain):
        def fit(self, *args, **kwargs):
            pass

    monkeypatch.setattr(pretrain, "BestRQBrain", NoFitBrain)
    with logged_messages(pretrain.logger, logging.INFO) as messages:
        pretrain.main([str(ROOT / "hparams" / "brq_tiny.yaml"), f"--data_folder={tiny_corpus}",
                       f"--output_folder={tmp_path}", "--train_splits=[train-clean-100]", "--attention_type=pom",
                       *tiny_model_args(num_layers=1)])
    lines = [m for m in messages if "BEST-RQ model" in m]
    assert len(lines) == 1
    assert lines[0].startswith("BEST-RQ model: mixer pom, d_model 32, ") and "M trainable parameters" in lines[0]
