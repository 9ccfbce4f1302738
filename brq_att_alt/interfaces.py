"""What the ``hyperparams.yaml`` of an exported model folder builds (``brq_att_alt.export``),
so that SpeechBrain's own inference classes load it, offline, from a local folder::

    from speechbrain.inference.ASR import EncoderASR
    asr = EncoderASR.from_hparams(source="exported/ctc", savedir="pretrained/ctc")
    asr.transcribe_file("a.flac")                    # -> "HELLO WORLD"

    from speechbrain.inference.encoders import WaveformEncoder
    enc = WaveformEncoder.from_hparams(source="exported/brq", savedir="pretrained/brq")
    out = enc.encode_batch(wavs, wav_lens)          # {"embeddings": (num_hidden_states, B, T', d), ...}

* ``CTCLogProbs``: the ``encoder`` module of ``EncoderASR``: waveforms -> CTC
  log-probabilities (B, T', V). Padded frames (after an utterance's end) are *certain
  blanks* (log-probability 0 for the blank, -inf for every other label), so the decoders
  below find each utterance's exact number of frames (``valid_frames``): SpeechBrain's
  relative lengths, rounded, may drop an utterance's last 40 ms frame in a batch.
* ``greedy_ctc_ids``: the greedy ``decoding_function`` (token ids per utterance, as
  ``speechbrain.decoders.ctc_greedy_decode``, word separators normalised as the project's
  ``ctc_decoding.greedy_decode``: transcripts are the same).
* ``NgramCTCBeamSearcher``: SpeechBrain's ``CTCBeamSearcher`` with the folder's n-gram LM
  (``NgramFile``, collected by the Pretrainer like the weights) and exact frame counts.
* ``HiddenStates``: the ``encoder`` module of ``WaveformEncoder`` for a pre-trained
  encoder: waveforms -> every hidden state (front end, then each layer).
* ``load_strict``: the Pretrainer's loading hook: a state dict that does not fit the
  model (SpeechBrain's default hook only warns) or an unreadable file is an error.
"""

import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from speechbrain.decoders.ctc import CTCBeamSearcher
from speechbrain.utils.checkpoints import mark_as_loader, register_checkpoint_hooks

from .asr import CTCHead
from .pretrained import PretrainedEncoder

PathLike = Union[str, Path]

EXPORT_INFO_NAME = "export.json"  # an exported folder's record: source checkpoint, decoding settings
LM_FILE_NAME = "lm.ckpt"  # the n-gram LM of an exported folder (the Pretrainer's <name>.ckpt convention)


def exported_decoding(folder: PathLike) -> Optional[dict]:
    """The LM decoding an exported folder was made with: ``{"lm_path", "alpha", "beta", "beam_size"}``
    (``lm_path`` inside ``folder``), or None (not an exported folder, or exported without an LM)."""
    info = Path(folder) / EXPORT_INFO_NAME
    if not info.is_file():
        return None
    decoding = json.loads(info.read_text(encoding="utf-8")).get("decoding")
    if not decoding:
        return None
    return {"lm_path": str(Path(folder) / decoding["lm"]), "alpha": float(decoding["alpha"]),
            "beta": float(decoding["beta"]), "beam_size": int(decoding["beam_size"])}


# ------------------------------------------------------------------ loading
def load_strict(obj, path: PathLike) -> None:
    """Pretrainer hook: a module gets the state dict of ``path`` with ``strict=True``; any
    other object (a tokenizer) its own ``load(path)``. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the model folder")
    if isinstance(obj, nn.Module):
        try:
            state = torch.load(path, map_location="cpu")
        except Exception as err:
            raise RuntimeError(f"{path} cannot be loaded ({type(err).__name__}: {err}); "
                               "export the model again") from err
        try:
            obj.load_state_dict(state)
        except RuntimeError as err:
            raise RuntimeError(f"{path} does not fit the model the hyperparams.yaml describes: {err}") from err
    else:
        obj.load(path)


@register_checkpoint_hooks
class NgramFile:
    """An n-gram LM file (ARPA or kenlm binary) the Pretrainer collects, like the weights
    (``lm.ckpt`` in the model folder); ``path`` is where it lies once loaded."""

    def __init__(self):
        self.path: Optional[str] = None

    @mark_as_loader
    def load(self, path: PathLike, end_of_epoch: bool = False) -> None:
        del end_of_epoch
        path = Path(path)
        if not path.is_file() or path.stat().st_size == 0:
            raise FileNotFoundError(f"n-gram LM file {path} is missing or empty")
        self.path = str(path)


def arpa_unigrams(path: PathLike):
    """The unigram set of an ARPA file whatever its name (``CTCBeamSearcher`` reads it only from a
    path ending in ``.arpa``; without it partial words are scored worse), None for a kenlm binary."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head.lstrip().startswith(b"\\data\\"):
        return None
    from speechbrain.integrations.decoders.kenlm_scorer import load_unigram_set_from_arpa

    return load_unigram_set_from_arpa(str(path))


# ------------------------------------------------------------------ modules
class CTCLogProbs(nn.Module):
    """(B, samples) 16 kHz waveforms + relative lengths (B,) -> CTC log-probabilities (B, T', V).

    Frames after an utterance's end are certain blanks (see the module doc).
    ``frontend_chunk_frames``: as ``PretrainedEncoder.encode`` (exact; bounds the front
    end's memory on minutes of audio).
    """

    def __init__(self, encoder: PretrainedEncoder, head: CTCHead, blank_index: int = 0,
                 frontend_chunk_frames: int = 2000):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.blank_index = int(blank_index)
        self.frontend_chunk_frames = int(frontend_chunk_frames)

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        out, padding_mask, _ = self.encoder.encode(wavs, wav_lens, frontend_chunk_frames=self.frontend_chunk_frames)
        log_probs = self.head(out).float().log_softmax(-1)
        return mark_padding_blank(log_probs, padding_mask, self.blank_index)


class HiddenStates(nn.Module):
    """(B, samples) 16 kHz waveforms + relative lengths (B,) -> ``{"embeddings": (num_hidden_states,
    B, T', d_model)`` (front-end output, then every layer; zeros on padding), ``"padding_mask":
    (B, T')`` (True = padded), ``"lengths": (B,)`` valid frames of 40 ms``}``."""

    def __init__(self, encoder: PretrainedEncoder, frontend_chunk_frames: int = 2000):
        super().__init__()
        self.encoder = encoder
        self.frontend_chunk_frames = int(frontend_chunk_frames)

    def forward(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        _, padding_mask, hidden = self.encoder.encode(wavs, wav_lens, hidden=True,
                                                      frontend_chunk_frames=self.frontend_chunk_frames)
        return {"embeddings": torch.stack(hidden), "padding_mask": padding_mask,
                "lengths": (~padding_mask).sum(1)}


# ------------------------------------------------------------------ decoding
def mark_padding_blank(log_probs: torch.Tensor, padding_mask: torch.Tensor, blank_index: int = 0) -> torch.Tensor:
    """(B, T, V) log-probabilities with the padded frames ((B, T), True = padded) set to certain blanks."""
    marked = log_probs.masked_fill(padding_mask.unsqueeze(-1), float("-inf"))
    marked[..., blank_index] = marked[..., blank_index].masked_fill(padding_mask, 0.0)
    return marked


def valid_frames(log_probs: torch.Tensor, blank_index: int = 0) -> torch.Tensor:
    """(B,) frames of each utterance of a ``CTCLogProbs`` output: those that are not certain blanks
    (a real frame never is: log_softmax of finite logits is finite)."""
    others = torch.cat([log_probs[..., :blank_index], log_probs[..., blank_index + 1:]], dim=-1)
    padded = (log_probs[..., blank_index] == 0) & torch.isneginf(others).all(-1)
    return (~padded).sum(1)


def greedy_ctc_ids(log_probs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, blank_id: int = 0,
                   space_id: Optional[int] = None) -> List[List[int]]:
    """Best-path CTC decoding of a ``CTCLogProbs`` output -> token ids per utterance (repeats
    merged, blanks dropped; with ``space_id``, no word separator at either end or twice in a row).

    ``wav_lens`` (SpeechBrain's relative lengths) is not needed: the frames are counted
    exactly (``valid_frames``).
    """
    del wav_lens
    lengths = valid_frames(log_probs, blank_id).tolist()
    best = log_probs.argmax(-1).cpu()
    out = []
    for b, n in enumerate(lengths):
        ids, prev = [], None
        for i in best[b, :n].tolist():
            if i != prev and i != blank_id:
                ids.append(i)
            prev = i
        if space_id is not None:
            kept: List[int] = []
            for i in ids:
                if i != space_id or (kept and kept[-1] != space_id):
                    kept.append(i)
            ids = kept[:-1] if kept and kept[-1] == space_id else kept
        out.append(ids)
    return out


class NgramCTCBeamSearcher(CTCBeamSearcher):
    """SpeechBrain's ``CTCBeamSearcher`` with the n-gram LM of an exported folder.

    ``lm``: the ``NgramFile`` the Pretrainer loaded (its unigrams are read from an ARPA file
    whatever its name, as ``CTCBeamSearcher`` does for a ``.arpa`` path); other arguments
    are ``CTCBeamSearcher``'s (``EncoderASR`` passes ``test_beam_search`` and ``vocab_list``).
    Each utterance is decoded over its exact frames (``valid_frames``), and its text has
    single spaces and none at either end, as the project's ``BeamSearchDecoder``.
    """

    def __init__(self, lm: Optional[NgramFile] = None, **kwargs):
        if lm is not None:
            if lm.path is None:
                raise RuntimeError("The n-gram LM was not loaded: list it in the pretrainer's loadables")
            kwargs["kenlm_model_path"] = lm.path
            if kwargs.get("unigrams") is None:
                kwargs["unigrams"] = arpa_unigrams(lm.path)
        super().__init__(**kwargs)

    def decode_beams(self, log_probs, wav_lens=None, lm_start_state=None):
        frames = valid_frames(log_probs, self.blank_index).float()
        # CTCBeamSearcher truncates T * relative length to an int: +0.5 frame keeps it exact
        relative = (frames + 0.5) / log_probs.shape[1]
        beams = super().decode_beams(log_probs, relative, lm_start_state)
        return [[dataclasses.replace(h, text=" ".join(h.text.split())) for h in hyps] for hyps in beams]


__all__ = ["EXPORT_INFO_NAME", "LM_FILE_NAME", "CTCLogProbs", "HiddenStates", "NgramCTCBeamSearcher", "NgramFile", "arpa_unigrams", "exported_decoding", "greedy_ctc_ids", "load_strict",
           "mark_padding_blank", "valid_frames"]
