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

``load_pretrained(folder, init="random", init_seed=s)`` builds the *random-initialised
twin* instead: the same architecture and configuration (``brq_model.json``), weights drawn
by the model's own initialisation under the seed ``s`` (the same seed gives the same
weights, the global random generators are left as they were), no checkpoint read. Probed
or fine-tuned exactly like the pre-trained encoder, it is the baseline that shows what
pre-training adds (the YAMLs' ``encoder_init: pretrained | random`` and ``encoder_init_seed``).
"""

import json
import logging
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union

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
ENCODER_INITS = ("pretrained", "random")
T = TypeVar("T")


def save_model_config(model: BestRQModel, save_folder: Union[str, Path]) -> Path:
    """Write ``model.config`` as ``<save_folder>/brq_model.json``."""
    path = Path(save_folder) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.config, indent=2, sort_keys=True))
    return path


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


def first_readable(candidates: Sequence[Path], load: Callable[[Path], T], save_folder: Path) -> Tuple[Path, T]:
    """(checkpoint, load(checkpoint)) for the first candidate ``load`` can read; each one that
    raises CheckpointError is reported and the next is tried. CheckpointError if none can,
    FileNotFoundError if there is none (``save_folder`` names where none was found)."""
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
    raise FileNotFoundError(f"No complete CKPT+*/{MODEL_CKPT_NAME} in {save_folder}: has the run saved a checkpoint?")


class EncoderOutput(NamedTuple):
    """What ``PretrainedEncoder.encode`` returns.

    ``output``: (B, T', d_model) the last layer (40 ms frames); ``padding_mask``: (B, T') bool,
    True = padded; ``hidden``: with ``hidden=True`` the ``num_hidden_states`` tensors
    (B, T', d_model) (front-end output, then every Conformer layer), else None.
    """

    output: torch.Tensor
    padding_mask: torch.Tensor
    hidden: Optional[List[torch.Tensor]]


class PretrainedEncoder(nn.Module):
    """Waveforms -> hidden states of a pre-trained BEST-RQ encoder.

    ``encode`` is the one path from audio to hidden states, used by the probes, CTC
    fine-tuning and inference; calling the module (or a DDP wrapper of it) runs it.
    ``mixer`` names the token mixer, ``num_hidden_states`` counts the tensors of
    ``hidden`` (num_layers + 1), ``d_model`` is their width.
    """

    def __init__(self, model: BestRQModel):
        super().__init__()
        self.model = model
        self.features = FbankFeatures(n_mels=model.config["n_mels"])
        self.checkpoint: Optional[Path] = None  # the checkpoint folder of the weights (load_pretrained)
        self.init = "pretrained"  # or "random:<seed>" for the random-initialised twin (load_pretrained)

    @property
    def config(self) -> dict:
        """The ``BestRQModel`` constructor arguments (``brq_model.json``)."""
        return self.model.config

    @property
    def mixer(self) -> str:
        return self.model.config["mixer"]

    @property
    def num_hidden_states(self) -> int:
        """How many tensors ``encode(..., hidden=True)`` returns: front end + every layer."""
        return self.model.config["num_layers"] + 1

    @property
    def d_model(self) -> int:
        return self.model.config["d_model"]

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    def encoding_parameters(self) -> List[nn.Parameter]:
        """The trainable parameters ``encode`` uses (the pre-training head and quantizer are left out)."""
        return [p for name, p in self.model.named_parameters()
                if p.requires_grad and not name.startswith(("head.", "quantizer."))]

    def encode(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, hidden: bool = False,
               frontend_chunk_frames: int = 0) -> EncoderOutput:
        """(B, samples) 16 kHz waveforms + relative lengths (B,) (None: all full) -> ``EncoderOutput``.

        ``frontend_chunk_frames`` > 0 runs the conv front end over pieces of that many fbank
        frames (exact: see ``_frontend``), for minutes of audio; 0 = one piece.
        """
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=wavs.device)
        feats, mask = self.features(wavs, wav_lens)
        x, out_mask = self._frontend(feats, mask, frontend_chunk_frames)
        del feats
        out = self.model.encoder(x, out_mask, return_hidden=hidden)
        if hidden:
            return EncoderOutput(out[0], out_mask, out[1])
        return EncoderOutput(out, out_mask, None)

    def forward(self, *args, **kwargs) -> EncoderOutput:
        """``encode`` (so that the module, and a DDP wrapper of it, can be called)."""
        return self.encode(*args, **kwargs)

    def _frontend(self, feats: torch.Tensor, mask: torch.Tensor, chunk: int):
        """The conv front end, run over time chunks of ``chunk`` fbank frames when the input is longer.

        The front end is local (receptive field +-3 fbank frames at 40 ms output steps) but
        its first Conv2d has 128 channels: on minutes of audio that activation, not the linear
        mixers, would dominate the memory. Chunks overlap by 8 fbank frames and the 2 output
        frames next to each cut are dropped, so the result equals the one-pass output.
        """
        frontend = self.model.frontend
        T = feats.shape[1]
        if chunk <= 0 or T <= chunk:
            return frontend(feats, mask)
        chunk -= chunk % 4
        ctx = 8
        outs, masks = [], []
        for start in range(0, T, chunk):
            lo, hi = max(0, start - ctx), min(T, start + chunk + ctx)
            x, m = frontend(feats[:, lo:hi], mask[:, lo:hi])
            first = (start - lo) // 4
            n = (min(start + chunk, T) - start + 3) // 4
            outs.append(x[:, first : first + n])
            masks.append(m[:, first : first + n])
        return torch.cat(outs, 1), torch.cat(masks, 1)

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
    init: str = "pretrained",
    init_seed: int = 0,
    **config_overrides,
) -> PretrainedEncoder:
    """Rebuild the encoder of a pre-training run and load its weights.

    Arguments
    ---------
    path : output folder or save folder of a run (the newest readable checkpoint is loaded),
        or one of its ``CKPT+*`` folders (exactly that one is loaded).
    checkpoint : a specific ``CKPT+*`` folder (path, or name inside the save folder).
    freeze : eval mode and no gradients (the MP3S setting); False to fine-tune.
    init : ``"pretrained"`` (the run's weights) or ``"random"``: the random-initialised twin,
        the run's architecture and configuration with freshly initialised weights
        (``random_twin``); no checkpoint is read then, only ``brq_model.json``.
    init_seed : the seed of the twin's weights (``init="random"`` only).
    config_overrides : e.g. ``dropout=0.0`` or ``layerdrop=0.05`` for fine-tuning.
    """
    if init not in ENCODER_INITS:
        raise ValueError(f"init (the YAMLs' encoder_init) must be one of {ENCODER_INITS}, got {init!r}")
    save_folder, named = resolve_run(path)
    if init == "random":
        if checkpoint is not None:
            raise ValueError("init='random' reads no checkpoint: leave checkpoint unset")
        return random_twin(save_folder, init_seed, freeze, **config_overrides)
    if checkpoint is not None:
        named = named_checkpoint(save_folder, checkpoint)
    if named is not None:
        ckpt, state = named, load_state(named, MODEL_CKPT_NAME, map_location)
    else:
        ckpt, state = first_readable(checkpoint_candidates(save_folder),
                                     lambda c: load_state(c, MODEL_CKPT_NAME, map_location), save_folder)
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


def random_twin(path: Union[str, Path], seed: int = 0, freeze: bool = True, **config_overrides) -> PretrainedEncoder:
    """The random-initialised twin of a run: ``BestRQModel(**brq_model.json (+ overrides))`` built
    under ``torch.manual_seed(seed)`` inside a forked random state (the caller's generators are
    left unchanged), so the same seed gives the same weights. ``encoder.init`` is
    ``"random:<seed>"`` and ``encoder.checkpoint`` None."""
    save_folder, _ = resolve_run(path)
    config = json.loads((Path(save_folder) / CONFIG_NAME).read_text())
    config.update(config_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = BestRQModel(**config)
    encoder = PretrainedEncoder(model)
    encoder.init = f"random:{int(seed)}"
    return encoder.freeze() if freeze else encoder
