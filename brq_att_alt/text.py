"""CTC vocabularies: characters (blank, word separator, apostrophe, A-Z) and SentencePiece units.

``CharTokenizer`` maps an upper-case LibriSpeech-style transcript to label ids
and back. Index 0 is the CTC blank, index 1 the word separator (a space, so that
``labels`` can be handed as ``vocab_list`` to SpeechBrain's ``CTCBeamSearcher``
with its default ``space_token=" "``)::

    >>> tok = CharTokenizer()
    >>> tok.decode(tok.encode("it's ok"))
    "IT'S OK"

``SentencePieceTokenizer`` is the MP3S Common Voice vocabulary: a SentencePiece model
(BPE, 100 units, character coverage 1.0, trained on the training transcripts by
SpeechBrain's ``speechbrain.tokenizers.SentencePiece``) whose id 0 (``<unk>``) is the CTC
blank, as in MP3S. Both share the interface the CTC code uses (``labels``,
``blank_index``, ``vocab_size``, ``normalize``, ``encode``, ``decode``, ``ctc_collapse``,
``save``); ``load_tokenizer`` reads either from its ``tokenizer.json``.
"""

import json
import os
import string
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import torch

BLANK = "<blank>"
SPACE = " "
DEFAULT_CHARS = ("'",) + tuple(string.ascii_uppercase)


class _Vocabulary:
    """What every CTC vocabulary has: ``labels`` (id -> symbol, id 0 the blank)."""

    labels: List[str]

    @property
    def vocab_size(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return self.vocab_size


class CharTokenizer(_Vocabulary):
    """Characters <-> ids; blank = 0, word separator (space) = 1, then ``chars``.

    Arguments
    ---------
    chars: the non-space symbols, default apostrophe and A-Z (any alphabet works, e.g.
        the characters of a CommonVoice training set). Text is upper-cased before
        encoding; a character outside the vocabulary is dropped (or, for a hyphen not
        in ``chars`` and any whitespace, turned into a word separator).
    """

    def __init__(self, chars: Optional[Sequence[str]] = None):
        chars = list(DEFAULT_CHARS if chars is None else chars)
        if len(set(chars)) != len(chars) or any(len(c) != 1 or c.isspace() for c in chars):
            raise ValueError(f"chars must be distinct single non-space characters, got {chars!r}")
        self.chars = chars
        self.labels: List[str] = [BLANK, SPACE] + chars
        self.blank_index = 0
        self.space_index = 1
        self._index = {c: i for i, c in enumerate(self.labels) if i > 0}

    def normalize(self, text: str) -> str:
        """Upper case, separators for hyphens/whitespace, unknown characters dropped, single spaces."""
        text = text.upper()
        if "-" not in self._index:
            text = text.replace("-", " ")
        kept = "".join(c if c in self._index else (" " if c.isspace() else "") for c in text)
        return " ".join(kept.split())

    def encode(self, text: str) -> torch.LongTensor:
        """Transcript -> (L,) LongTensor of ids (never blank)."""
        return torch.tensor([self._index[c] for c in self.normalize(text)], dtype=torch.long)

    def decode(self, ids: Union[torch.Tensor, Iterable[int]]) -> str:
        """Ids -> text; blanks dropped, separators merged (no CTC collapsing: see ``ctc_collapse``)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if i == self.blank_index:
                continue
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary (size {self.vocab_size})")
            out.append(self.labels[i])
        return " ".join("".join(out).split())

    def ctc_collapse(self, ids: Union[torch.Tensor, Iterable[int]]) -> str:
        """Frame-level best path ids -> text (merge repeats, then drop blanks)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.decode(_merge_repeats(ids))

    # ------------------------------------------------------------------ io
    def to_dict(self) -> dict:
        return {"type": "char", "chars": self.chars, "blank_index": 0, "space_index": 1}

    def save(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "CharTokenizer":
        data = json.loads(Path(path).read_text())
        if data.get("type") != "char":
            raise ValueError(f"{path} is not a CharTokenizer file (type={data.get('type')!r})")
        return cls(data["chars"])

    def __eq__(self, other) -> bool:
        return isinstance(other, CharTokenizer) and other.labels == self.labels

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _merge_repeats(ids: Iterable[int]) -> List[int]:
    merged, prev = [], None
    for i in ids:
        i = int(i)
        if i != prev:
            merged.append(i)
        prev = i
    return merged


class SentencePieceTokenizer(_Vocabulary):
    """SentencePiece units <-> ids for CTC, laid out as MP3S's Common Voice probes.

    Arguments
    ---------
    model_path: a SentencePiece ``.model`` file whose ``<unk>`` id is 0 (SpeechBrain's
        ``SentencePiece`` default). Id 0 doubles as the CTC blank, as in MP3S (output layer
        = the model's ``vocab_size`` units, blank index 0): a unit unknown to the model can
        thus never be a CTC target, and ``encode`` leaves it out.

    The transcripts are expected normalised by the data preparation (``normalize`` only
    collapses white space); ``labels`` are the pieces (words start with ``▁``, which
    SpeechBrain's ``CTCBeamSearcher`` recognises).
    """

    blank_index = 0

    def __init__(self, model_path: Union[str, Path]):
        import sentencepiece as spm

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"SentencePiece model not found: {self.model_path}")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        if self.sp.unk_id() != self.blank_index:
            raise ValueError(f"{self.model_path}: <unk> has id {self.sp.unk_id()}; the CTC blank needs it at 0 "
                             "(train with unk_id=0, SpeechBrain's default)")
        self.labels: List[str] = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    @classmethod
    def train(cls, train_csv: Union[str, Path], model_dir: Union[str, Path], vocab_size: int = 100,
              model_type: str = "bpe", character_coverage: float = 1.0,
              column: str = "wrd") -> "SentencePieceTokenizer":
        """Train (once: an existing model of these settings in ``model_dir`` is reused) on
        the ``column`` of ``train_csv`` with SpeechBrain's ``SentencePiece``, as MP3S does;
        ``<model_dir>/<vocab_size>_<model_type>.model``."""
        from speechbrain.tokenizers.SentencePiece import SentencePiece

        try:
            trained = SentencePiece(model_dir=str(model_dir), vocab_size=int(vocab_size),
                                    annotation_train=str(train_csv), annotation_read=column,
                                    model_type=model_type, character_coverage=character_coverage)
        except RuntimeError as err:  # e.g. "Vocabulary size too high": too little training text
            raise ValueError(f"Training a {vocab_size}-unit {model_type} SentencePiece model on {train_csv} "
                             f"failed ({err}); with this little text, lower the vocabulary size") from err
        return cls(trained.prefix_model_file + ".model")

    def normalize(self, text: str) -> str:
        """Single spaces (the data preparations normalise the text itself)."""
        return " ".join(text.split())

    def encode(self, text: str) -> torch.LongTensor:
        """Transcript -> (L,) LongTensor of unit ids (never 0: unknown units are left out)."""
        ids = self.sp.encode(self.normalize(text), out_type=int)
        return torch.tensor([i for i in ids if i != self.blank_index], dtype=torch.long)

    def decode(self, ids: Union[torch.Tensor, Iterable[int]]) -> str:
        """Ids -> text; blanks dropped (no CTC collapsing: see ``ctc_collapse``)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        kept = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary (size {self.vocab_size})")
            if i != self.blank_index:
                kept.append(i)
        return self.normalize(self.sp.decode(kept))

    def ctc_collapse(self, ids: Union[torch.Tensor, Iterable[int]]) -> str:
        """Frame-level best path ids -> text (merge repeats, then drop blanks)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.decode(_merge_repeats(ids))

    def to_dict(self, relative_to: Optional[Path] = None) -> dict:
        model = str(self.model_path.resolve())
        if relative_to is not None:
            model = os.path.relpath(model, Path(relative_to).resolve())
        return {"type": "sentencepiece", "model": model, "blank_index": self.blank_index}

    def save(self, path: Union[str, Path]) -> Path:
        """``path`` (json) names the model file relative to its own folder."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(relative_to=path.parent), indent=2))
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "SentencePieceTokenizer":
        path = Path(path)
        data = json.loads(path.read_text())
        if data.get("type") != "sentencepiece":
            raise ValueError(f"{path} is not a SentencePieceTokenizer file (type={data.get('type')!r})")
        return cls(path.parent / data["model"])

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({self.model_path.name}, vocab_size={self.vocab_size})"


def load_tokenizer(path: Union[str, Path]) -> Union[CharTokenizer, SentencePieceTokenizer]:
    """The tokenizer a ``tokenizer.json`` describes (``type``: ``char`` or ``sentencepiece``)."""
    kind = json.loads(Path(path).read_text()).get("type")
    if kind == "char":
        return CharTokenizer.load(path)
    if kind == "sentencepiece":
        return SentencePieceTokenizer.load(path)
    raise ValueError(f"{path}: unknown tokenizer type {kind!r} (expected 'char' or 'sentencepiece')")


__all__ = ["BLANK", "SPACE", "CharTokenizer", "SentencePieceTokenizer", "load_tokenizer"]
