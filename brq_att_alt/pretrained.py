"""Save and reload a pre-trained BEST-RQ encoder for downstream use.

A pre-training run writes into its ``save_folder``:

* ``brq_model.json``: the BestRQModel constructor arguments (``model.config``),
* ``CKPT+<time>/model.ckpt``: SpeechBrain checkpoints holding the model state dict.

``load_pretrained(folder)`` rebuilds the model from these, loads the newest (or a
given) checkpoint, and returns a ``PretrainedEncoder`` that maps waveforms to the
encoder's hidden states. Frozen by default: eval mode and no gradients.
"""

import json
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import yaml
import torch.nn as nn

from .features import FbankFeatures
from .model import BestRQModel

CONFIG_NAME = "brq_model.json"
MODEL_CKPT_NAME = "model.ckpt"


def save_model_config(model: BestRQModel, save_folder: Union[str, Path]) -> Path:
    """Write ``model.config`` as ``<save_folder>/brq_model.json``."""
    path = Path(save_folder) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.config, indent=2, sort_keys=True))
    return path


def save_pretrained(model: BestRQModel, save_folder: Union[str, Path], name: str = "CKPT+exported") -> Path:
    """Write a model in the layout of a pre-training run (config + CKPT folder); returns save_folder.

    Useful to export a model trained elsewhere, and for tests.
    """
    save_folder = Path(save_folder)
    save_model_config(model, save_folder)
    (save_folder / name).mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), save_folder / name / MODEL_CKPT_NAME)
    return save_folder


def find_save_folder(path: Union[str, Path]) -> Path:
    """Accept a run's output folder, its ``save`` folder, or a CKPT folder inside it."""
    path = Path(path)
    for candidate in (path, path / "save", path.parent):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise FileNotFoundError(
        f"No {CONFIG_NAME} found in {path}, {path / 'save'} or {path.parent}. Point to the "
        "output_folder (or its save/ folder) of a pre-training run made with train.py."
    )


def checkpoint_meta(ckpt: Path) -> dict:
    """The meta data SpeechBrain's Checkpointer wrote in ``<ckpt>/CKPT.yaml`` ({} if none)."""
    meta = Path(ckpt) / "CKPT.yaml"
    return (yaml.safe_load(meta.read_text()) or {}) if meta.is_file() else {}


def latest_checkpoint(save_folder: Path) -> Path:
    """Newest ``CKPT+*`` folder that holds a model checkpoint (by its meta time, else name)."""
    ckpts = [p for p in save_folder.glob("CKPT+*") if (p / MODEL_CKPT_NAME).is_file()]
    if (save_folder / MODEL_CKPT_NAME).is_file():
        return save_folder
    if not ckpts:
        raise FileNotFoundError(f"No CKPT+*/{MODEL_CKPT_NAME} in {save_folder}: has the run saved a checkpoint?")
    return max(ckpts, key=lambda p: (float(checkpoint_meta(p).get("unixtime", 0.0)), p.name))


class PretrainedEncoder(nn.Module):
    """Waveforms -> hidden states of a pre-trained BEST-RQ encoder.

    ``forward(wavs (B, samples), wav_lens (B,) relative)`` returns
    ``(hidden, padding_mask)``: a list of num_layers + 1 tensors (B, T', d_model)
    (front-end output, then every Conformer layer; 40 ms frames) and the (B, T')
    bool padding mask (True = padded).
    """

    def __init__(self, model: BestRQModel):
        super().__init__()
        self.model = model
        self.features = FbankFeatures(n_mels=model.config["n_mels"])

    @property
    def num_layers(self) -> int:
        return self.model.config["num_layers"] + 1

    @property
    def d_model(self) -> int:
        return self.model.config["d_model"]

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        feats, mask = self.features(wavs, wav_lens)
        _, out_mask, hidden = self.model.encode(feats, mask, return_hidden=True)
        return hidden, out_mask

    def freeze(self) -> "PretrainedEncoder":
        """Eval mode and requires_grad False on every parameter; returns self."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True):
        # A frozen encoder stays in eval mode (no dropout) even inside a training Brain.
        frozen = all(not p.requires_grad for p in self.parameters())
        return super().train(False if frozen else mode)


def load_pretrained(
    path: Union[str, Path],
    checkpoint: Optional[Union[str, Path]] = None,
    freeze: bool = True,
    map_location: Union[str, torch.device] = "cpu",
    **config_overrides,
) -> PretrainedEncoder:
    """Rebuild the encoder of a pre-training run and load its weights.

    Arguments
    ---------
    path : output folder, save folder or CKPT folder of a pre-training run.
    checkpoint : a specific ``CKPT+*`` folder; default the newest in the save folder.
    freeze : eval mode and no gradients (the MP3S setting); False to fine-tune.
    config_overrides : e.g. ``dropout=0.0`` or ``layerdrop=0.05`` for fine-tuning.
    """
    save_folder = find_save_folder(path)
    config = json.loads((save_folder / CONFIG_NAME).read_text())
    config.update(config_overrides)
    model = BestRQModel(**config)
    ckpt = Path(checkpoint) if checkpoint is not None else latest_checkpoint(save_folder)
    state = torch.load(ckpt / MODEL_CKPT_NAME, map_location=map_location)
    model.load_state_dict(state)
    encoder = PretrainedEncoder(model)
    return encoder.freeze() if freeze else encoder
