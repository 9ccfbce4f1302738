"""Parameter matching (issue 2 section 4) and the 13 pre-training YAML files (issue 3)."""

from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from brq_att_alt.mixers import MIXER_CLASSES, MIXERS, resolved_mixer_options
from brq_att_alt.model import count_parameters
from brq_att_alt.sizes import (
    D_MODEL, SIZES, TARGET_PARAMS, TOLERANCE, matched_d_model, model_config, parameter_count,
)

HPARAMS = Path(__file__).resolve().parents[1] / "hparams"

# The papers' published counts (REFERENCE.md), where our layout reproduces them exactly.
PAPER_PARAMS = {
    ("mhsa", "base"): 94.0, ("mhsa", "large"): 313.5,
    ("hypermixing", "base"): 94.3, ("hypermixing", "large"): 315.4,
    ("fastformer", "base"): 93.9,
    ("summarymixing", "base"): 94.1, ("summarymixing", "large"): 313.7,
    ("mamba", "base"): 94.2, ("mamba", "large"): 314.9,
}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("mixer", MIXERS)
def test_parameter_count_within_3_percent(mixer, size):
    n = parameter_count(mixer, size)
    assert abs(n / TARGET_PARAMS[size] - 1) <= TOLERANCE, f"{mixer} {size}: {n / 1e6:.1f}M"
    if (mixer, size) in PAPER_PARAMS:
        assert round(n / 1e6, 1) == PAPER_PARAMS[(mixer, size)]


def test_unknown_size_or_mixer():
    with pytest.raises(ValueError, match="base"):
        model_config("mhsa", "huge")
    with pytest.raises(ValueError, match="mhsa"):
        model_config("lstm", "base")
    with pytest.raises(ValueError, match="--attention_type"):
        matched_d_model("lstm", "base")
    assert matched_d_model("pom", "large") == D_MODEL["pom"]["large"] == model_config("pom", "large")["d_model"]


def load_yaml(path, tmp_path, **overrides):
    """A YAML on the meta device (no memory); the paper YAMLs need a data_folder."""
    with open(path) as fin, torch.device("meta"):
        return load_hyperpyyaml(fin, {"output_folder": str(tmp_path), "data_folder": str(tmp_path), **overrides})


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("size", list(SIZES))
def test_yaml_instantiates_with_matching_size(mixer, size, tmp_path):
    path = HPARAMS / f"brq_{mixer}{'' if size == 'base' else '_large'}.yaml"
    hp = load_yaml(path, tmp_path)
    assert hp["attention_type"] == mixer and hp["size_name"] == size
    assert hp["d_model"] == D_MODEL[mixer][size]
    assert count_parameters(hp["model"]) == parameter_count(mixer, size)
    # the public large Mamba config had lr 0: every paper config trains with the same recipe
    assert hp["lr"] == 0.0008 and hp["warmup_steps"] == 25000 and hp["optimizer_step_limit"] == 200000
    assert isinstance(hp["model"].encoder.layers[0].mixer, MIXER_CLASSES[mixer])


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("mixer", MIXERS)
def test_attention_type_swap_builds_the_matched_width(mixer, size, tmp_path):
    """brq_mhsa[_large].yaml --attention_type=X builds X at its own width, within 3% of the budget."""
    path = HPARAMS / f"brq_mhsa{'' if size == 'base' else '_large'}.yaml"
    hp = load_yaml(path, tmp_path, attention_type=mixer)
    assert hp["d_model"] == D_MODEL[mixer][size]
    assert isinstance(hp["model"].encoder.layers[0].mixer, MIXER_CLASSES[mixer])
    n = count_parameters(hp["model"])
    assert n == parameter_count(mixer, size)
    assert abs(n / TARGET_PARAMS[size] - 1) <= TOLERANCE, f"{mixer} {size}: {n / 1e6:.1f}M"
    if mixer == "summarymixing":  # its summary MLP follows the width through !ref <d_model>
        assert hp["mixer_options"]["summarymixing"]["summary_out_dim"] == D_MODEL[mixer][size]


def test_explicit_d_model_wins_over_the_size_table(tmp_path):
    hp = load_yaml(HPARAMS / "brq_mhsa.yaml", tmp_path, attention_type="mamba", d_model=512)
    assert hp["d_model"] == 512 and hp["model"].config["d_model"] == 512
    assert hp["model"].encoder.layers[0].mixer.fwd.d_model == 512


def test_yaml_files_share_one_structure():
    files = sorted(HPARAMS.glob("brq_*.yaml"))
    assert len(files) == 13  # 6 mixers x (base, large) + the tiny demo
    reference = None
    for f in files:
        keys = [line.split(":")[0] for line in f.read_text().splitlines() if line and not line.startswith(("#", " "))]
        reference = reference or keys
        assert keys == reference, f"{f.name} differs in its top-level keys"


def test_attention_type_override_swaps_mixer(tmp_path):
    hp = load_yaml(HPARAMS / "brq_tiny.yaml", tmp_path, attention_type="pom")
    assert isinstance(hp["model"].encoder.layers[0].mixer, MIXER_CLASSES["pom"])


def test_mixer_options_reach_the_mixer(tmp_path):
    hp = load_yaml(HPARAMS / "brq_tiny.yaml", tmp_path, attention_type="pom", mixer_options={"pom": {"degree": 2}})
    assert hp["model"].encoder.layers[0].mixer.degree == 2
    with pytest.raises(Exception):
        load_yaml(HPARAMS / "brq_tiny.yaml", tmp_path, attention_type="pom", mixer_options={"pom": {"degre": 2}})


def test_unknown_attention_type_names_valid_ones(tmp_path):
    with pytest.raises(ValueError) as err:
        load_yaml(HPARAMS / "brq_tiny.yaml", tmp_path, attention_type="conformerxl")
    assert all(name in str(err.value) for name in MIXERS)


@pytest.mark.parametrize("path", sorted(HPARAMS.glob("brq_*.yaml")), ids=lambda p: p.name)
def test_every_mixer_option_is_in_every_yaml(path, tmp_path):
    """Overrides must match existing keys, so each option must be listed to be reachable."""
    import inspect

    hp = load_yaml(path, tmp_path)
    for name, cls in MIXER_CLASSES.items():
        options = set(inspect.signature(cls.__init__).parameters) - {"self", "d_model", "nhead", "dropout"}
        assert set(hp["mixer_options"][name]) == options, f"{path.name}: {name}"


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("size", list(SIZES))
def test_paper_yamls_have_the_papers_encoder_settings(mixer, size, tmp_path):
    """Layerdrop 0.05 / 0.1, 2-60 s utterances, Swish, the input position encoding of the papers'
    code, the mixers' papers' options (Mamba in its RMSNorm block, PoM in two halves + LayerNorm)."""
    path = HPARAMS / f"brq_{mixer}{'' if size == 'base' else '_large'}.yaml"
    hp = load_yaml(path, tmp_path)
    assert hp["layerdrop"] == {"base": 0.05, "large": 0.1}[size] and hp["find_unused_parameters"] is True
    assert hp["min_duration"] == 2.0 and hp["max_duration"] == 60.0
    cfg = hp["model"].config
    assert cfg["activation"] == "swish" and cfg["dropout"] == 0.1
    assert cfg["input_pos_enc"] == ("none" if mixer in ("mhsa", "hypermixing") else "sine")
    # every option as the mixer's default (the papers' values), listed or left null in the YAML
    defaults = {k: v for k, v in resolved_mixer_options(mixer, {}).items() if k != "summary_out_dim"}
    assert {k: cfg["mixer_kwargs"][k] for k in defaults} == defaults
    layer_mixer = hp["model"].encoder.layers[0].mixer
    if mixer == "mamba":
        assert layer_mixer.norm is not None
    if mixer == "pom":
        assert layer_mixer.groups == 2 and layer_mixer.norm is not None
    if mixer == "hypermixing":
        assert cfg["mixer_kwargs"]["hypernet_size"] == hp["d_ffn"] == 2048


def test_tiny_yaml_keeps_its_small_gelu_settings(tmp_path):
    hp = load_yaml(HPARAMS / "brq_tiny.yaml", tmp_path)
    assert hp["model"].config["activation"] == "gelu" and hp["layerdrop"] == 0.0
    assert hp["find_unused_parameters"] is False


def test_sizes_need_no_mixer_overrides():
    """The width table is d_model alone: every other width is the mixer's default."""
    for mixer in MIXERS:
        for size in SIZES:
            assert model_config(mixer, size)["mixer_kwargs"] == {}
