"""Save and reload a pre-trained BEST-RQ encoder for downstream use.

A pre-training run writes into its ``save_folder``:

* ``brq_model.json``: the BestRQModel constructor arguments (``model.config``),
* ``CKPT+<time>/model.ckpt``: SpeechBrain checkpoints holding the model state dict.

``load_pretrained(folder)`` rebuilds the model from these, loads the newest readable
checkpoint (or exactly the ``CKPT+...`` folder it is given), and returns a
``PretrainedEncoder`` that maps waveforms to the encoder's hidden states. Frozen by
default: eval mode and no gradients. An incomplete or unreadable newest checkpoint is
reported by its folder name and the previous one is used; a named checkpoint that is
broken, or a path that does not exist, is an error.
"""

import json
import logging
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar, Union

import torch
import yaml
import torch.nn as nn

from .checkpointing import CheckpointError, checkpoint_problem
from .features import FbankFeatures
from .model import BestRQModel

logger = logging.getLogger(__name__)

CONFIG_NAME = "brq_model.json"
MODEL_CKPT_NAME = "model.ckpt"
CKPT_GLOB = "CKPT+*"
T = TypeVar("T")


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
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist. Give the output_folder of a run, its save/ folder, or one of "
            "its save/CKPT+... checkpoint folders."
        )
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


def resolve_run(path: Union[str, Path]) -> Tuple[Path, Optional[Path]]:
    """(save folder, checkpoint folder) of a path naming a run (checkpoint None: not chosen
    yet) or one of its ``CKPT+...`` folders. A path that does not exist is an error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist. Give the output_folder of a run, its save/ folder, or one of "
            "its save/CKPT+... checkpoint folders."
        )
    if path.is_dir() and path.name.startswith("CKPT+"):
        if not (path.parent / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} looks like a checkpoint folder but {path.parent / CONFIG_NAME} is missing")
        return path.parent, path
    return find_save_folder(path), None


def named_checkpoint(save_folder: Path, checkpoint: Union[str, Path]) -> Path:
    """A ``checkpoint`` argument as a folder: a path, or a ``CKPT+...`` name inside save_folder."""
    ckpt = Path(checkpoint)
    if not ckpt.exists() and not ckpt.is_absolute() and (Path(save_folder) / ckpt).exists():
        ckpt = Path(save_folder) / ckpt
    if not ckpt.is_dir():
        raise FileNotFoundError(f"Checkpoint folder {checkpoint} does not exist (a CKPT+... folder of {save_folder})")
    return ckpt


def checkpoint_candidates(save_folder: Path, needed: Sequence[str] = (MODEL_CKPT_NAME,)) -> List[Path]:
    """Checkpoint folders of a save folder, newest first (by CKPT.yaml time, else name);
    incomplete ones (``checkpointing.checkpoint_problem``) are reported and left out. A model
    saved directly in the save folder comes first."""
    save_folder = Path(save_folder)
    ckpts = []
    for path in sorted(save_folder.glob(CKPT_GLOB)):
        if not path.is_dir():
            continue
        problem = checkpoint_problem(path, needed)
        if problem is not None:
            logger.warning("Checkpoint %s is incomplete or unreadable (%s): skipped.", path, problem)
            continue
        ckpts.append(path)
    ckpts.sort(key=lambda p: (float(checkpoint_meta(p).get("unixtime", 0.0)), p.name), reverse=True)
    direct = [save_folder] if (save_folder / MODEL_CKPT_NAME).is_file() else []
    return direct + ckpts


def latest_checkpoint(save_folder: Path) -> Path:
    """Newest complete checkpoint folder that holds a model checkpoint."""
    ckpts = checkpoint_candidates(Path(save_folder))
    if not ckpts:
        raise FileNotFoundError(f"No complete CKPT+*/{MODEL_CKPT_NAME} in {save_folder}: has the run saved "
                                "a checkpoint?")
    return ckpts[0]


def load_state(ckpt: Path, name: str = MODEL_CKPT_NAME, map_location: Union[str, torch.device] = "cpu"):
    """``torch.load(ckpt / name)``; CheckpointError naming the folder if it cannot be read."""
    path = Path(ckpt) / name
    problem = checkpoint_problem(ckpt, (name,))
    if problem is not None:
        raise CheckpointError(f"Checkpoint {ckpt} cannot be used: {problem}")
    try:
        return torch.load(path, map_location=map_location)
    except Exception as err:  # truncated zip, unpickling error, EOF ...
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"Checkpoint {ckpt} cannot be used: {name} cannot be loaded "
                              f"({type(err).__name__}: {detail})") from err


def first_readable(candidates: Sequence[Path], load: Callable[[Path], T]) -> Tuple[Path, T]:
    """(checkpoint, load(checkpoint)) for the first candidate ``load`` can read; each one that
    raises CheckpointError is reported and the next is tried. CheckpointError if none can."""
    failed = []
    for ckpt in candidates:
        try:
            result = load(ckpt)
        except CheckpointError as err:
            logger.warning("%s: trying the previous checkpoint.", err)
            failed.append(str(err))
            continue
        if failed:
            logger.warning("Using checkpoint %s (newer ones could not be read).", ckpt)
        return ckpt, result
    if failed:
        raise CheckpointError("No checkpoint can be read: " + "; ".join(failed))
    raise FileNotFoundError("No checkpoint found (has the run saved one?)")


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
        self.checkpoint: Optional[Path] = None  # the checkpoint folder of the weights (load_pretrained)

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
    path : output folder or save folder of a run (the newest readable checkpoint is loaded),
        or one of its ``CKPT+*`` folders (exactly that one is loaded).
    checkpoint : a specific ``CKPT+*`` folder (path, or name inside the save folder).
    freeze : eval mode and no gradients (the MP3S setting); False to fine-tune.
    config_overrides : e.g. ``dropout=0.0`` or ``layerdrop=0.05`` for fine-tuning.
    """
    save_folder, named = resolve_run(path)
    if checkpoint is not None:
        named = named_checkpoint(save_folder, checkpoint)
    if named is not None:
        ckpt, state = named, load_state(named, MODEL_CKPT_NAME, map_location)
    else:
        candidates = checkpoint_candidates(save_folder)
        if not candidates:
            raise FileNotFoundError(f"No complete CKPT+*/{MODEL_CKPT_NAME} in {save_folder}: has the run saved a "
                                    "checkpoint?")
        ckpt, state = first_readable(candidates, lambda c: load_state(c, MODEL_CKPT_NAME, map_location))
    return build_encoder(save_folder, state, ckpt, freeze, **config_overrides)


def build_encoder(save_folder: Path, state: dict, checkpoint: Optional[Path] = None, freeze: bool = True,
                  **config_overrides) -> PretrainedEncoder:
    """A PretrainedEncoder from ``<save_folder>/brq_model.json`` (+ overrides) and a model state
    dict; ``encoder.checkpoint`` records the checkpoint folder the weights come from."""
    config = json.loads((Path(save_folder) / CONFIG_NAME).read_text())
    config.update(config_overrides)
    model = BestRQModel(**config)
    model.load_state_dict(state)
    encoder = PretrainedEncoder(model)
    encoder.checkpoint = Path(checkpoint) if checkpoint is not None else None
    return encoder.freeze() if freeze else encoder
