"""Inference with BEST-RQ checkpoints: transcription (CTC fine-tuned) and layer-wise features.

A fine-tuning run of ``recipes/finetune_ctc`` writes into its save folder, next to
the pre-training layout (``brq_model.json`` + ``CKPT+*/model.ckpt``), its CTC head and
tokenizer (``ctc_head.json``, ``tokenizer.json``, ``CKPT+*/head.ckpt``; see ``asr.py``),
so ``BestRQTranscriber.from_folder`` can rebuild encoder + head + tokenizer, and
``load_pretrained`` still reads the (fine-tuned) encoder alone. Features work for a
pre-training folder too::

    asr = BestRQTranscriber.from_folder("results/finetune_ctc/.../")
    asr.transcribe_file("a.flac")                 # -> "HELLO WORLD"
    feats = asr.layer_features("a.flac")          # .hidden: num_hidden_states tensors (1, T', d)

Long recordings: the linear mixers (everything but ``mhsa``) take a whole file in one
pass under ``torch.inference_mode`` (memory linear in its length). With ``mhsa``
(quadratic memory) files longer than ``chunk_seconds`` are cut into independent
chunks, with a warning.
"""

import json
import logging
import warnings
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from speechbrain.utils.data_utils import batch_pad_right

from .asr import HEAD_CKPT_NAME, HEAD_CONFIG_NAME, TOKENIZER_NAME, CTCHead
from .ctc_decoding import BeamSearchDecoder, greedy_decode
from .data.audio import read_audio
from .interfaces import arpa_unigrams, exported_decoding
from .pretrained import (
    MODEL_CKPT_NAME,
    checkpoint_candidates,
    checkpoint_meta,
    PretrainedEncoder,
    build_encoder,
    first_readable,
    load_state,
    named_checkpoint,
    resolve_run,
)
from .text import CharTokenizer

logger = logging.getLogger(__name__)

# chunk boundaries at multiples of one encoder frame (4 fbank hops of 10 ms)
FRAME_SAMPLES = 640
PathLike = Union[str, Path]


def ranked_checkpoints(save_folder: Path) -> List[Path]:
    """Complete checkpoint folders, best first: lowest validation ``WER`` in CKPT.yaml (a
    fine-tuning run keeps the best and the most recent), then the others newest first."""
    newest_first = checkpoint_candidates(Path(save_folder))
    scored = sorted((float(checkpoint_meta(c)["WER"]), c.name, c) for c in newest_first
                    if "WER" in checkpoint_meta(c))
    best = [c for _, _, c in scored]
    return best + [c for c in newest_first if c not in best]


class LayerFeatures(NamedTuple):
    """``hidden``: ``num_hidden_states`` tensors (B, T', d) (front end, then each layer; zeros on padding);
    ``lengths``: (B,) valid frames (40 ms each)."""

    hidden: List[torch.Tensor]
    lengths: torch.Tensor

    def stacked(self) -> torch.Tensor:
        """(num_hidden_states, B, T', d)."""
        return torch.stack(self.hidden)


class BestRQTranscriber:
    """Encoder (+ CTC head + tokenizer for a fine-tuned folder) for inference.

    Arguments
    ---------
    encoder: a ``PretrainedEncoder`` (frozen for inference).
    head, tokenizer: the CTC head and its tokenizer; None for a pre-training folder
        (features only).
    decoder: None (greedy) or a ``BeamSearchDecoder``.
    chunk_seconds: longest piece encoded at once. Default: None (one pass) for the
        linear mixers, 30 s for ``mhsa``; 0 = never chunk.
    device: where the model runs.
    frontend_chunk_frames: fbank frames per piece of the (local, exact) chunked conv
        front end (default 2000 = 20 s); 0 = one piece.
    """

    def __init__(self, encoder: PretrainedEncoder, head: Optional[CTCHead] = None,
                 tokenizer: Optional[CharTokenizer] = None, decoder: Optional[BeamSearchDecoder] = None,
                 chunk_seconds: Optional[float] = None, device: Union[str, torch.device] = "cpu",
                 frontend_chunk_frames: int = 2000):
        self.frontend_chunk_frames = int(frontend_chunk_frames)
        self.device = torch.device(device)
        self.encoder = encoder.freeze().to(self.device)
        self.head = head.eval().to(self.device) if head is not None else None
        self.tokenizer = tokenizer
        self.decoder = decoder
        self.mixer = encoder.mixer
        if chunk_seconds is None:
            chunk_seconds = 30.0 if self.mixer == "mhsa" else 0.0
        self.chunk_seconds = float(chunk_seconds)
        self.sample_rate = encoder.sample_rate

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_folder(cls, path: PathLike, checkpoint: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu",
                    lm_path: Optional[PathLike] = None, beam_size: Optional[int] = None, alpha: Optional[float] = None,
                    beta: Optional[float] = None, chunk_seconds: Optional[float] = None,
                    require_head: bool = False) -> "BestRQTranscriber":
        """Load a fine-tuning output folder (encoder + head + tokenizer) or a pre-training one (encoder
        only), or a folder written by ``python -m brq_att_alt.export``.

        ``path`` may also be a ``CKPT+*`` folder of such a run: exactly that checkpoint is loaded.
        ``checkpoint``: the same, given apart. Default: the checkpoint with the best validation
        WER (fine-tuning runs), else the newest; one that cannot be read is reported and the
        next one is used.

        ``lm_path`` (ARPA or kenlm binary) or ``beam_size > 1`` switch from greedy to beam search.
        An exported folder with an LM decodes with it and its settings (``export.json``) when
        ``lm_path`` is None; ``lm_path=""`` means greedy. Settings not given and not exported:
        ``alpha`` 0.5, ``beta`` 1.0, ``beam_size`` 1.
        ``require_head``: raise if the folder has no CTC head (a pre-training folder).
        """
        save_folder, named = resolve_run(path)
        if checkpoint is not None:
            named = named_checkpoint(save_folder, checkpoint)
        has_head = (save_folder / HEAD_CONFIG_NAME).is_file()

        def read(ckpt: Path):  # (encoder state, head state or None); CheckpointError if unreadable
            return load_state(ckpt, MODEL_CKPT_NAME), load_state(ckpt, HEAD_CKPT_NAME) if has_head else None

        if named is not None:
            ckpt, (encoder_state, head_state) = named, read(named)
        else:
            ckpt, (encoder_state, head_state) = first_readable(ranked_checkpoints(save_folder), read, save_folder)
        encoder = build_encoder(save_folder, encoder_state, ckpt, freeze=True)
        head = tokenizer = None
        if has_head:
            head = CTCHead(**json.loads((save_folder / HEAD_CONFIG_NAME).read_text()))
            head.load_state_dict(head_state)
            tok_path = save_folder / TOKENIZER_NAME
            tokenizer = CharTokenizer.load(tok_path) if tok_path.is_file() else CharTokenizer()
            if tokenizer.vocab_size != head.config["vocab_size"]:
                raise ValueError(f"Tokenizer size {tokenizer.vocab_size} != head output {head.config['vocab_size']}")
        elif require_head:
            raise FileNotFoundError(
                f"{save_folder} holds no {HEAD_CONFIG_NAME}: it is a pre-training folder (features only). "
                "Transcription needs the output folder of recipes/finetune_ctc."
            )
        exported = exported_decoding(save_folder) if lm_path is None else None
        lm_options = {}
        if exported is not None:
            lm_options["unigrams"] = arpa_unigrams(exported["lm_path"])  # lm.ckpt: not found by its name
            lm_path = exported["lm_path"]
            alpha, beta = (exported["alpha"] if alpha is None else alpha), (exported["beta"] if beta is None else beta)
            beam_size = exported["beam_size"] if beam_size is None else beam_size
        alpha, beta = 0.5 if alpha is None else alpha, 1.0 if beta is None else beta
        beam_size = 1 if beam_size is None else beam_size
        decoder = None
        if head is not None and (lm_path or beam_size > 1):
            decoder = BeamSearchDecoder(tokenizer, lm_path=lm_path or None, alpha=alpha, beta=beta,
                                        beam_size=max(beam_size, 1), **lm_options)
        logger.info("Loaded %s (mixer %s, checkpoint %s, %s)", save_folder, encoder.mixer,
                    ckpt.name, "with CTC head" if head is not None else "encoder only")
        return cls(encoder, head, tokenizer, decoder, chunk_seconds=chunk_seconds, device=device)

    @property
    def can_transcribe(self) -> bool:
        return self.head is not None

    # ---------------------------------------------------------------- encoding
    def _encode(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor], hidden: bool = False):
        """-> (output (B, T', d), lengths (B,), hidden states list or None)."""
        wavs = wavs.to(self.device).float()
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        finite = torch.isfinite(wavs).all(dim=1)
        if not bool(finite.all()):
            raise ValueError(f"Waveform batch items {(~finite).nonzero().flatten().tolist()} hold NaN or Inf "
                             "samples: their features and transcripts would be meaningless.")
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wav_lens = wav_lens.to(self.device).float()
        num_samples = torch.round(wav_lens * wavs.shape[1]).long()
        chunk = int(round(self.chunk_seconds * self.sample_rate / FRAME_SAMPLES)) * FRAME_SAMPLES
        if chunk <= 0 or int(num_samples.max()) <= chunk:
            out, mask, states = self.encoder.encode(wavs, wav_lens, hidden, self.frontend_chunk_frames)
            return out, (~mask).sum(1), states
        warnings.warn(
            f"{self.mixer} has quadratic memory: audio longer than {self.chunk_seconds:g} s is encoded "
            "in independent chunks (no context across chunk boundaries). Use a linear mixer for one pass, "
            "or chunk_seconds=0 to force it.",
            stacklevel=3,
        )
        outs, all_states, lengths = [], [], []
        for b in range(wavs.shape[0]):
            wav = wavs[b, : int(num_samples[b])]
            pieces = [wav[s : s + chunk] for s in range(0, wav.shape[0], chunk)]
            if len(pieces) > 1 and pieces[-1].shape[0] < FRAME_SAMPLES:  # a sliver: merge it
                pieces[-2] = torch.cat([pieces[-2], pieces.pop()])
            o_parts, s_parts = [], []
            for piece in pieces:
                o, m, s = self.encoder.encode(piece.unsqueeze(0), None, hidden, self.frontend_chunk_frames)
                n = int((~m).sum())
                o_parts.append(o[0, :n])
                if hidden:
                    s_parts.append([h[0, :n] for h in s])
            outs.append(torch.cat(o_parts))
            lengths.append(outs[-1].shape[0])
            if hidden:
                all_states.append([torch.cat(layer) for layer in zip(*s_parts)])
        T = max(lengths)

        def pad(seqs):
            batch = seqs[0].new_zeros(len(seqs), T, seqs[0].shape[-1])
            for i, s in enumerate(seqs):
                batch[i, : s.shape[0]] = s
            return batch

        states = [pad(list(layer)) for layer in zip(*all_states)] if hidden else None
        return pad(outs), torch.tensor(lengths), states

    # ------------------------------------------------------------- features
    def _load_batch(self, file_or_batch, wav_lens=None) -> Tuple[torch.Tensor, torch.Tensor]:
        if isinstance(file_or_batch, (str, Path)):
            file_or_batch = [file_or_batch]
        if isinstance(file_or_batch, torch.Tensor):
            wavs = file_or_batch if file_or_batch.dim() == 2 else file_or_batch.unsqueeze(0)
            lens = torch.ones(wavs.shape[0]) if wav_lens is None else torch.as_tensor(wav_lens).float()
            return wavs, lens
        return batch_pad_right([read_audio(p, self.sample_rate, check_finite=True) for p in file_or_batch])

    def layer_features(self, file_or_batch, wav_lens: Optional[torch.Tensor] = None) -> LayerFeatures:
        """Every hidden state of the encoder for a file, a list of files, or a (B, samples) batch.

        Returns ``LayerFeatures(hidden, lengths)``: num_hidden_states tensors (B, T', d) and the
        (B,) numbers of valid frames (files in a list are padded to the longest, in order).
        """
        wavs, lens = self._load_batch(file_or_batch, wav_lens)
        with torch.inference_mode():
            _, lengths, states = self._encode(wavs, lens, hidden=True)
        return LayerFeatures([s.cpu() for s in states], lengths.cpu())

    # ---------------------------------------------------------- transcription
    def _require_head(self):
        if self.head is None:
            raise RuntimeError("This folder holds a pre-trained encoder without CTC head: it gives "
                               "layer_features() but cannot transcribe. Fine-tune it with recipes/finetune_ctc.")

    def log_probs(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, samples) waveforms -> CTC log-probabilities (B, T', V) and valid frame counts (B,)."""
        self._require_head()
        with torch.inference_mode():
            out, lengths, _ = self._encode(wavs, wav_lens)
            logp = self.head(out).log_softmax(-1)
        return logp.cpu(), lengths.cpu()

    def transcribe_batch(self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None) -> List[str]:
        """(B, samples) 16 kHz waveforms + relative lengths -> B transcripts."""
        logp, lengths = self.log_probs(wavs, wav_lens)
        if self.decoder is not None:
            return self.decoder(logp, lengths)
        return greedy_decode(logp, lengths, self.tokenizer)

    def transcribe_file(self, path: PathLike) -> str:
        return self.transcribe_files([path])[0]

    def transcribe_files(self, paths: Sequence[PathLike], batch_size: int = 8) -> List[str]:
        """Transcripts of audio files (any rate / channels: resampled to 16 kHz mono), in order.

        Files are batched by similar length; ``batch_size`` 1 runs them one by one.
        """
        self._require_head()
        wavs = [read_audio(p, self.sample_rate, check_finite=True) for p in paths]
        order = sorted(range(len(wavs)), key=lambda i: wavs[i].shape[0])
        out: List[Optional[str]] = [None] * len(wavs)
        for start in range(0, len(order), max(batch_size, 1)):
            idx = order[start : start + max(batch_size, 1)]
            batch, lens = batch_pad_right([wavs[i] for i in idx])
            for i, text in zip(idx, self.transcribe_batch(batch, lens)):
                out[i] = text
        return out  # type: ignore[return-value]


__all__ = ["BestRQTranscriber", "LayerFeatures", "ranked_checkpoints"]
