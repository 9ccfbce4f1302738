"""Character vocabulary for CTC: blank, word separator, apostrophe, A-Z.

``CharTokenizer`` maps an upper-case LibriSpeech-style transcript to label ids
and back. Index 0 is the CTC blank, index 1 the word separator (a space, so that
``labels`` can be handed as ``vocab_list`` to SpeechBrain's ``CTCBeamSearcher``
with its default ``space_token=" "``)::

    >>> tok = CharTokenizer()
    >>> tok.decode(tok.encode("it's ok"))
    "IT'S OK"
"""

import json
import string
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import torch

BLANK = "<blank>"
SPACE = " "
DEFAULT_CHARS = ("'",) + tuple(string.ascii_uppercase)


class CharTokenizer:
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

    @property
    def vocab_size(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return self.vocab_size

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
        merged, prev = [], None
        for i in ids:
            i = int(i)
            if i != prev:
                merged.append(i)
            prev = i
        return self.decode(merged)

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


__all__ = ["BLANK", "SPACE", "CharTokenizer"]
