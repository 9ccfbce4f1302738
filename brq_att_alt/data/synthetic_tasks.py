"""Downstream-task manifests built from the synthetic eSpeak corpus (``labels.csv``).

The synthetic corpus (``synthetic.py``) stands in for every MP3S dataset:

* ``asr``: transcripts (CommonVoice-like low-resource split choice, LibriSpeech
  recipes use ``prepare_librispeech`` on the corpus directly);
* ``verification``: voices; the last ``num_test_speakers`` speakers form the
  test set, scored on a VoxCeleb-format trial list of all their utterance pairs;
* ``intent``: the SLURP-like scenario of each templated sentence;
* ``emotion``: the prosody style (neutral / happy / sad / angry); the first
  ``num_speakers`` voices play IEMOCAP's speakers, two per session, for MP3S's
  leave-one-speaker-out folds.

Every manifest has the columns of the matching real-dataset preparation, so a
recipe reads both the same way. Audio paths follow the corpus layout
``<corpus>/<split>/<spk>/<chapter>/<ID>.flac``.
"""

import itertools
import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from ..csv_files import write_csv
from .iemocap import CSV_COLUMNS as EMOTION_COLUMNS
from .iemocap import make_speaker_folds
from .manifest import fmt_duration
from .synthetic import load_labels
from .voxceleb import write_trial_list

logger = logging.getLogger(__name__)

ASR_COLUMNS = ("ID", "duration", "wav", "spk_id", "wrd")
SV_COLUMNS = ("ID", "duration", "wav", "spk_id")
IC_COLUMNS = ("ID", "duration", "wav", "scenario", "intent", "wrd")


def load_corpus_rows(corpus_folder: Union[str, Path]) -> List[dict]:
    """Rows of ``labels.csv`` (``synthetic.load_labels``, duration as manifest text) with the
    absolute ``wav`` path added; a clear error when the folder is not a synthetic corpus."""
    corpus_folder = Path(corpus_folder)
    rows = load_labels(corpus_folder)
    for row in rows:
        spk, chapter = row["ID"].split("-")[:2]
        row["duration"] = fmt_duration(row["duration"])
        row["wav"] = str((corpus_folder / row["split"] / spk / chapter / f"{row['ID']}.flac").resolve())
    return rows


def _select(rows: List[dict], splits: Sequence[str], what: str) -> List[dict]:
    splits = [splits] if isinstance(splits, str) else list(splits)
    out = [r for r in rows if r["split"] in splits]
    if not out:
        present = sorted({r["split"] for r in rows})
        raise ValueError(f"No utterance of the synthetic corpus in {splits} for {what} (it has {present})")
    return out


def prepare_synthetic_asr(corpus_folder, save_folder, split_map: Mapping[str, Sequence[str]]) -> Dict[str, str]:
    """``{name: [corpus splits]}`` -> ``<save>/<name>.csv`` (ID,duration,wav,spk_id,wrd)."""
    rows = load_corpus_rows(corpus_folder)
    return {name: str(write_csv(Path(save_folder) / f"{name}.csv", ASR_COLUMNS, _select(rows, splits, name)))
            for name, splits in split_map.items()}


def prepare_synthetic_intent(corpus_folder, save_folder, split_map: Mapping[str, Sequence[str]]) -> Dict[str, str]:
    """Scenario classification manifests (SLURP columns; intent = scenario)."""
    rows = load_corpus_rows(corpus_folder)
    out = {}
    for name, splits in split_map.items():
        part = [dict(r, intent=r["scenario"]) for r in _select(rows, splits, name)]
        out[name] = str(write_csv(Path(save_folder) / f"{name}.csv", IC_COLUMNS, part))
    return out


def prepare_synthetic_verification(corpus_folder, save_folder, num_test_speakers: int = 6,
                                   train_splits: Sequence[str] = ("train-clean-100",),
                                   valid_splits: Sequence[str] = ("dev-clean",),
                                   test_splits: Sequence[str] = ("test-clean",),
                                   max_trials: Optional[int] = None) -> Dict[str, str]:
    """train/valid (classification of the training speakers), test + trials.txt (held-out speakers).

    Trials: every unordered pair of test utterances, label 1 when same speaker
    (``max_trials``: keep every positive, then negatives up to the limit, in order).
    """
    rows = load_corpus_rows(corpus_folder)
    speakers = sorted({r["spk_id"] for r in rows}, key=lambda s: (len(s), s))
    if not 1 <= num_test_speakers < len(speakers):
        raise ValueError(f"num_test_speakers must be in [1, {len(speakers) - 1}], got {num_test_speakers}")
    test_spk = set(speakers[-num_test_speakers:])
    save_folder = Path(save_folder)
    out = {}
    for name, splits, keep in (("train", train_splits, False), ("valid", valid_splits, False),
                               ("test", test_splits, True)):
        part = [r for r in _select(rows, splits, name) if (r["spk_id"] in test_spk) == keep]
        if not part:
            raise ValueError(f"No {name} utterance for the synthetic verification task")
        out[name] = str(write_csv(save_folder / f"{name}.csv", SV_COLUMNS, part))
        if keep:
            test_rows = part
    pairs = list(itertools.combinations(test_rows, 2))
    trials = [(int(a["spk_id"] == b["spk_id"]), a["ID"], b["ID"]) for a, b in pairs]
    if max_trials is not None and len(trials) > max_trials:
        pos = [t for t in trials if t[0] == 1]
        neg = [t for t in trials if t[0] == 0]
        trials = pos + neg[: max(max_trials - len(pos), 1)]
    out["trials"] = str(write_trial_list(trials, save_folder / "trials.txt"))
    return out


def prepare_synthetic_emotion(corpus_folder, save_folder,
                              splits: Sequence[str] = ("train-clean-100", "dev-clean", "test-clean"),
                              num_speakers: int = 10, test_speakers: Optional[Sequence] = None) -> Dict[str, Dict[str, str]]:
    """all.csv (IEMOCAP columns, emo = style) + MP3S's leave-one-speaker-out folds.

    The first ``num_speakers`` speakers (sorted by id; an even number, at least 4) play
    IEMOCAP's speakers 1..num_speakers: speaker n sits in session ceil(n / 2), as IEMOCAP's
    10 speakers in its 5 sessions; the other voices are left out.
    """
    rows = _select(load_corpus_rows(corpus_folder), splits, "emotion")
    speakers = sorted({r["spk_id"] for r in rows}, key=lambda s: (len(s), s))
    if num_speakers % 2 or not 4 <= num_speakers <= len(speakers):
        raise ValueError(f"num_speakers must be even and in [4, {len(speakers)}] (two per session, "
                         f"two sessions at least) for {len(speakers)} speakers, got {num_speakers}")
    number = {s: i + 1 for i, s in enumerate(speakers[:num_speakers])}
    items = [{"ID": r["ID"], "duration": r["duration"], "wav": r["wav"], "spk_id": r["spk_id"],
              "session": str((number[r["spk_id"]] + 1) // 2), "speaker": number[r["spk_id"]], "emo": r["style"]}
             for r in rows if r["spk_id"] in number]
    write_csv(Path(save_folder) / "all.csv", EMOTION_COLUMNS, items)
    return make_speaker_folds(items, save_folder, test_speakers)
