"""The random-initialised twin of a pre-training run (``load_pretrained(..., init="random")``): the
same architecture and configuration, other weights, deterministic by seed; and the YAML key
``encoder_init`` that the probes and fine-tuning pass to it."""

import json

import pytest
import torch

from brq_att_alt.model import BestRQModel
from brq_att_alt.pretrained import CONFIG_NAME, load_pretrained, random_twin
from helpers import MP3S, REPO_ROOT, TINY_MODEL, save_run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run whose weights are not what the initialisation gives (a stand-in for training)."""
    torch.manual_seed(0)
    model = BestRQModel("pom", **TINY_MODEL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    return save_run(model, tmp_path_factory.mktemp("run") / "save").parent


def _state(encoder):
    return {k: v.clone() for k, v in encoder.model.state_dict().items()}


def test_same_architecture_and_config_other_weights(trained_run):
    pretrained = load_pretrained(trained_run)
    twin = load_pretrained(trained_run, init="random", init_seed=3)
    assert twin.config == pretrained.config == json.loads((trained_run / "save" / CONFIG_NAME).read_text())
    a, b = _state(pretrained), _state(twin)
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    encoder_keys = [k for k in a if not k.startswith("quantizer.")]  # the quantizer has its own seed
    assert all(not torch.equal(a[k], b[k]) for k in encoder_keys if a[k].is_floating_point() and a[k].numel() > 1)
    assert pretrained.init == "pretrained" and pretrained.checkpoint is not None
    assert twin.init == "random:3" and twin.checkpoint is None
    # frozen like the pre-trained encoder, and it encodes
    assert not twin.training and not any(p.requires_grad for p in twin.parameters())
    out = twin.encode(torch.randn(2, 8000), torch.tensor([1.0, 0.6]), hidden=True)
    assert len(out.hidden) == twin.num_hidden_states and out.output.shape[-1] == twin.d_model
    assert torch.isfinite(out.output).all()


def test_deterministic_by_seed_and_leaves_the_global_generators_alone(trained_run):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = _state(random_twin(trained_run, seed=5))
    assert torch.equal(torch.get_rng_state(), before)
    again = _state(load_pretrained(trained_run, init="random", init_seed=5))
    other = _state(load_pretrained(trained_run, init="random", init_seed=6))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    # the weights are the model's own initialisation under that seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        reference = BestRQModel(**json.loads((trained_run / "save" / CONFIG_NAME).read_text())).state_dict()
    assert all(torch.equal(first[k], reference[k]) for k in first)


def test_twin_with_overrides_and_trainable(trained_run):
    twin = load_pretrained(trained_run, init="random", init_seed=1, freeze=False, dropout=0.0)
    assert twin.config["dropout"] == 0.0 and any(p.requires_grad for p in twin.parameters())


def test_bad_init_and_checkpoint_with_random(trained_run):
    with pytest.raises(ValueError, match="encoder_init"):
        load_pretrained(trained_run, init="randon")
    with pytest.raises(ValueError, match="reads no checkpoint"):
        load_pretrained(trained_run, checkpoint="CKPT+exported", init="random")
    with pytest.raises(FileNotFoundError):
        load_pretrained(trained_run / "missing", init="random")


def test_every_probe_and_finetuning_yaml_passes_encoder_init():
    yamls = sorted(MP3S.glob("*/*/hparams/*.yaml")) + sorted((REPO_ROOT / "recipes" / "finetune_ctc").glob("**/*.yaml"))
    assert len(yamls) == 12
    for path in yamls:
        text = path.read_text()
        assert "\nencoder_init: pretrained " in text and "\nencoder_init_seed: 0 " in text, path
        assert "    init: !ref <encoder_init>\n    init_seed: !ref <encoder_init_seed>\n" in text, path
