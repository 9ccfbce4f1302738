"""Small helpers and constants shared by the tests (not a test module; fixtures are in conftest.py)."""

import contextlib
import importlib.util
import logging
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
MP3S = REPO_ROOT / "recipes" / "MP3S"
REAL_SPEECH = REPO_ROOT / "tests" / "samples" / "real_speech"  # 12 recordings shipped with the repository

# The tiny BestRQModel of the tests (BestRQModel arguments but the mixer)
TINY_MODEL = dict(d_model=32, num_layers=2, nhead=4, d_ffn=64, kernel_size=7, codebook_size=64)


def tiny_model_args(**changes) -> list:
    """TINY_MODEL (with ``changes``) as recipe command-line overrides: ["--d_model=32", ...]."""
    return [f"--{key}={value}" for key, value in {**TINY_MODEL, **changes}.items()]


def save_run(model, save_folder, name: str = "CKPT+exported") -> Path:
    """Write ``model`` in the layout of a pre-training run's save folder (``brq_model.json`` +
    ``<name>/model.ckpt``), as ``brq_att_alt.pretrained.load_pretrained`` reads it; returns save_folder."""
    from brq_att_alt.pretrained import MODEL_CKPT_NAME, save_model_config

    save_folder = Path(save_folder)
    save_model_config(model, save_folder)
    (save_folder / name).mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), save_folder / name / MODEL_CKPT_NAME)
    return save_folder


def save_finetuned_run(root, mixer: str = "summarymixing", head: bool = True) -> Path:
    """``root/save`` in the layout of a fine-tuning run: a random tiny model (seed 0) and, with
    ``head``, a character CTC head whose blank is not always the best (it produces characters)."""
    from brq_att_alt.asr import HEAD_CKPT_NAME, CTCHead, save_asr_config
    from brq_att_alt.model import BestRQModel
    from brq_att_alt.text import CharTokenizer

    root = Path(root)
    torch.manual_seed(0)
    save = save_run(BestRQModel(mixer=mixer, **TINY_MODEL), root / "save")
    if head:
        tok = CharTokenizer()
        ctc = CTCHead(TINY_MODEL["d_model"], tok.vocab_size, hidden_size=32)
        with torch.no_grad():
            ctc.net[-1].bias[0] -= 3.0
        save_asr_config(ctc, tok, save)
        torch.save(ctc.state_dict(), save / "CKPT+exported" / HEAD_CKPT_NAME)
    return root


class _Messages(logging.Handler):
    def __init__(self, level):
        super().__init__(level)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def logged_messages(logger: logging.Logger, level: int = logging.DEBUG):
    """The messages ``logger`` emits at ``level`` and above inside the block, as a list
    (SpeechBrain's logging set-up replaces the root handlers, and so pytest's caplog)."""
    handler = _Messages(level)
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def load_script(path, name: str = None):
    """A recipe or script file (not a module of the package) imported by its path: a fresh
    module object each call, so that a test can monkeypatch it alone."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or f"script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def padded_batch(seqs):
    """List of (T_i, d) tensors -> right-padded (B, T_max, d) batch and mask (B, T_max)."""
    T = max(s.shape[0] for s in seqs)
    x = torch.zeros(len(seqs), T, seqs[0].shape[1])
    mask = torch.ones(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, : s.shape[0]] = s
        # garbage, not zeros, in the padding: a leak must show up
        x[i, s.shape[0]:] = 100.0 * torch.randn(T - s.shape[0], s.shape[1])
        mask[i, : s.shape[0]] = False
    return x, mask
