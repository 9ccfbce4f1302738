"""Common Voice (v11) preparation: CSV manifests for low-resource CTC ASR (Welsh cy, Basque eu).

Expected layout (one language of the official release)::

    <data_folder>/train.tsv, dev.tsv, test.tsv     tab-separated, columns include
                                                   client_id, path, sentence
    <data_folder>/clips/<path>                     the audio (mp3 in the release;
                                                   .wav / .flac accepted too)

``data_folder`` may also be the release folder holding ``<language>/`` (e.g.
``cv-corpus-11.0-2022-09-21`` with ``cy/`` inside). Output:
``<save_folder>/{train,dev,test}.csv`` with columns ``ID,duration,wav,spk_id,wrd``
(``wrd`` normalised by :func:`normalize_text`: upper case, letters, apostrophes
and single spaces only). Clips that are missing, unreadable, truncated or hold non-finite
samples (``manifest.check_audio_file``, in parallel) are skipped and listed in
``<split>_skipped.txt`` with the reason.
"""

import csv
import logging
import unicodedata
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

from ..csv_files import read_csv, write_csv
from .manifest import already_prepared, check_audio_file, fmt_duration, map_files, record_options, write_skipped

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("ID", "duration", "wav", "spk_id", "wrd")
DEFAULT_SPLITS = ("train", "dev", "test")
_APOSTROPHES = "\u2019\u2018`\u00b4\u02bc"


def normalize_text(sentence: str) -> str:
    """Upper case; letters (any script, accents kept) and inner apostrophes; single spaces."""
    text = unicodedata.normalize("NFC", sentence)
    for ch in _APOSTROPHES:
        text = text.replace(ch, "'")
    text = text.replace("-", " ")
    chars = [c if (unicodedata.category(c).startswith("L") or c == "'") else " " for c in text]
    words = []
    for word in "".join(chars).upper().split():
        word = word.strip("'")
        if word:
            words.append(word)
    return " ".join(words)


def _find_language_folder(data_folder: Path, language: Optional[str], splits: Sequence[str]) -> Path:
    if not data_folder.is_dir():
        raise FileNotFoundError(
            f"Common Voice data_folder {data_folder} does not exist; expected a language folder "
            "holding train.tsv, dev.tsv, test.tsv and clips/ (e.g. cv-corpus-11.0-2022-09-21/cy)."
        )
    candidates = [data_folder] + ([data_folder / language] if language else [])
    for cand in candidates:
        if all((cand / f"{s}.tsv").is_file() for s in splits):
            if not (cand / "clips").is_dir():
                raise FileNotFoundError(f"{cand} has the .tsv files but no clips/ folder holding the audio")
            return cand
    content = sorted(p.name for p in data_folder.iterdir())[:10]
    raise FileNotFoundError(
        f"{data_folder} does not look like a Common Voice language folder: expected "
        f"{', '.join(s + '.tsv' for s in splits)} and clips/ in it"
        + (f" or in {data_folder / language}" if language else "")
        + f" (it holds {content})."
    )


def _resolve_clip(clips: Path, name: str) -> Optional[Path]:
    path = clips / name
    if path.is_file():
        return path
    for ext in (".mp3", ".wav", ".flac"):
        alt = path.with_suffix(ext)
        if alt.is_file():
            return alt
    return None


def prepare_commonvoice(data_folder: Union[str, Path], save_folder: Union[str, Path],
                        language: Optional[str] = None, splits: Sequence[str] = DEFAULT_SPLITS,
                        max_duration: Optional[float] = None) -> Dict[str, str]:
    """Write ``<save_folder>/<split>.csv`` for each split; returns {split: csv path}."""
    save_folder = Path(save_folder)
    splits = [splits] if isinstance(splits, str) else list(splits)
    out = {s: str(save_folder / f"{s}.csv") for s in splits}
    root = _find_language_folder(Path(data_folder).expanduser(), language, splits)
    options = {"data_folder": str(root.resolve()), "splits": splits, "max_duration": max_duration}
    if already_prepared(save_folder, [f"{s}.csv" for s in splits], options, "commonvoice"):
        return out
    save_folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        rows, skipped, candidates = [], [], []
        records = read_csv(root / f"{split}.tsv", required=("client_id", "path", "sentence"), delimiter="\t",
                           quoting=csv.QUOTE_NONE)
        for rec in records:
            clip = _resolve_clip(root / "clips", rec["path"])
            if clip is None:
                skipped.append((root / "clips" / rec["path"], "missing audio"))
                continue
            words = normalize_text(rec["sentence"] or "")
            if not words:
                skipped.append((clip, "empty transcript"))
                continue
            candidates.append((rec, clip, words))
        checks = map_files(check_audio_file, [str(clip) for _, clip, _ in candidates],
                           desc=f"Common Voice {split}: checking audio")
        for (rec, clip, words), (duration, problem) in zip(candidates, checks):
            if problem is not None:  # unreadable, truncated or non-finite samples
                skipped.append((clip, problem))
                continue
            if max_duration is not None and duration > max_duration:
                continue
            rows.append({"ID": Path(rec["path"]).stem, "duration": fmt_duration(duration),
                         "wav": str(clip.resolve()), "spk_id": rec["client_id"], "wrd": words})
        if not rows:
            raise ValueError(f"No usable clip in {root / (split + '.tsv')} ({len(skipped)} skipped)")
        write_csv(save_folder / f"{split}.csv", CSV_COLUMNS, sorted(rows, key=lambda r: r["ID"]))
        write_skipped(save_folder / f"{split}_skipped.txt", skipped)
        logger.info("Common Voice %s: %d clips, %d skipped", split, len(rows), len(skipped))
    record_options(save_folder, options, "commonvoice")
    return out
