"""IEMOCAP preparation for 4-class emotion recognition with MP3S's leave-one-speaker-out folds.

Expected layout (``IEMOCAP_full_release``)::

    <data_folder>/Session<k>/sentences/wav/<dialog>/<utterance>.wav
    <data_folder>/Session<k>/dialog/EmoEvaluation/<dialog>.txt
        lines "[start - end]<TAB><utterance><TAB><emotion><TAB>[v, a, d]"

Emotions kept: neutral, happy (+ excited merged into happy, the usual 4-class
setting), sad, angry. ``data_folder`` may also be the folder holding
``IEMOCAP_full_release``. Output in ``save_folder``:

* ``all.csv``: ``ID,duration,wav,spk_id,session,speaker,emo`` (spk_id e.g. ``Ses01F``;
  ``speaker`` the number MP3S gives it: session k holds speakers 2k-1, female, and 2k, male);
* ``fold_<k>/{train,valid,test}.csv``, one fold per test speaker k = 1..10 as MP3S
  (``different_speakers: True``): speaker k is the test set, the other speaker of its
  session the validation set, the 8 others the training set;
* ``all_skipped.txt``: labelled utterances left out (missing, unreadable, truncated or
  non-finite audio: ``manifest.check_audio_file``, in parallel) with the reason.

:func:`make_speaker_folds` builds the folds from any such rows (the synthetic corpus
uses it with its voices as speakers, two per session).
"""

import logging
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from ..csv_files import read_csv, write_csv
from .manifest import already_prepared, check_audio_file, fmt_duration, map_files, record_options, write_skipped

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("ID", "duration", "wav", "spk_id", "session", "speaker", "emo")
PREP_VERSION = 3  # 2: speaker numbers and leave-one-speaker-out folds; 3: audio checked (all_skipped.txt)
EMOTIONS = {"neu": "neu", "hap": "hap", "exc": "hap", "sad": "sad", "ang": "ang"}
_LINE = re.compile(r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\s+(\S+)\s+(\S+)\s+\[")
EXPECTED = ("<data_folder>/Session<k>/sentences/wav/<dialog>/<utt>.wav and "
            "<data_folder>/Session<k>/dialog/EmoEvaluation/<dialog>.txt (IEMOCAP_full_release)")


def speaker_number(session: int, gender: str) -> int:
    """MP3S's IEMOCAP speaker number: session k holds speaker 2k-1 (``F``) and 2k (``M``)."""
    if gender not in ("F", "M"):
        raise ValueError(f"IEMOCAP speaker gender must be 'F' or 'M', got {gender!r}")
    return 2 * int(session) - (1 if gender == "F" else 0)


def make_speaker_folds(rows: Sequence[dict], save_folder: Union[str, Path],
                       test_speakers: Optional[Iterable] = None) -> Dict[str, Dict[str, str]]:
    """Write ``fold_<k>/{train,valid,test}.csv`` for each test speaker k (default: every
    speaker): test = speaker k, valid = the other speaker of its session, train = every
    other speaker. ``rows`` have ``speaker`` and ``session``; every session of a fold's test
    speaker must hold exactly two speakers. Returns {k: {name: path}}."""
    save_folder = Path(save_folder)
    speakers = sorted({int(r["speaker"]) for r in rows})
    by_session: Dict[str, set] = {}
    for r in rows:
        by_session.setdefault(str(r["session"]), set()).add(int(r["speaker"]))
    session_of = {int(r["speaker"]): str(r["session"]) for r in rows}
    wanted = speakers if test_speakers is None else [int(k) for k in test_speakers]
    out = {}
    for k in wanted:
        if k not in session_of:
            raise ValueError(f"Test speaker {k} not in the data (speakers: {speakers})")
        partners = by_session[session_of[k]] - {k}
        if len(partners) != 1:
            raise ValueError(f"Session {session_of[k]} of test speaker {k} holds speakers "
                             f"{sorted(by_session[session_of[k]])}: leave-one-speaker-out needs two per session "
                             "(the other one validates)")
        valid_speaker = partners.pop()
        parts = {"train": [r for r in rows if int(r["speaker"]) not in (k, valid_speaker)],
                 "valid": [r for r in rows if int(r["speaker"]) == valid_speaker],
                 "test": [r for r in rows if int(r["speaker"]) == k]}
        if not parts["train"]:
            raise ValueError(f"Fold {k} has no training speaker: at least two sessions are needed")
        fold = save_folder / f"fold_{k}"
        out[str(k)] = {name: str(write_csv(fold / f"{name}.csv", CSV_COLUMNS, part)) for name, part in parts.items()}
    return out


def _find_root(data_folder: Path) -> Path:
    if not data_folder.is_dir():
        raise FileNotFoundError(f"IEMOCAP data_folder {data_folder} does not exist; expected {EXPECTED}.")
    for cand in (data_folder, data_folder / "IEMOCAP_full_release"):
        if any((cand / f"Session{k}" / "dialog" / "EmoEvaluation").is_dir() for k in range(1, 6)):
            return cand
    content = sorted(p.name for p in data_folder.iterdir())[:10]
    raise FileNotFoundError(f"{data_folder} does not look like IEMOCAP (it holds {content}); expected {EXPECTED}.")


def prepare_iemocap(data_folder: Union[str, Path], save_folder: Union[str, Path],
                    test_speakers: Optional[Iterable[int]] = None) -> Dict[str, Dict[str, str]]:
    """Write all.csv and the leave-one-speaker-out folds of ``test_speakers`` (default 1..10);
    returns {test speaker: {train, valid, test: csv path}}."""
    save_folder = Path(save_folder)
    root = _find_root(Path(data_folder).expanduser())
    options = {"version": PREP_VERSION, "data_folder": str(root.resolve())}
    if already_prepared(save_folder, ["all.csv"], options, "iemocap"):
        return make_speaker_folds(read_csv(save_folder / "all.csv"), save_folder, test_speakers)
    candidates: List[tuple] = []  # (wav, utterance, session, emotion)
    skipped: List[tuple] = []
    for k in range(1, 6):
        session_dir = root / f"Session{k}"
        evals = sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not session_dir.is_dir():
            logger.warning("IEMOCAP: %s missing", session_dir)
            continue
        if not evals:
            raise FileNotFoundError(f"{session_dir} has no dialog/EmoEvaluation/*.txt; expected {EXPECTED}.")
        for ev in evals:
            dialog = ev.stem
            for line in ev.read_text(encoding="utf-8", errors="replace").splitlines():
                m = _LINE.match(line.strip())
                if not m or m.group(4) not in EMOTIONS:
                    continue
                utt = m.group(3)
                wav = session_dir / "sentences" / "wav" / dialog / f"{utt}.wav"
                if not wav.is_file():
                    skipped.append((wav, "missing audio"))
                    continue
                candidates.append((wav, utt, k, EMOTIONS[m.group(4)]))
    checks = map_files(check_audio_file, [str(c[0]) for c in candidates], desc="IEMOCAP: checking audio")
    rows: List[dict] = []
    for (wav, utt, k, emo), (duration, problem) in zip(candidates, checks):
        if problem is not None:  # unreadable, truncated or non-finite samples
            skipped.append((wav, problem))
            continue
        gender = utt.split("_")[-1][0]  # the speaking turn's: Ses01F_impro01_M003 -> M
        rows.append({"ID": utt, "duration": fmt_duration(duration), "wav": str(wav.resolve()),
                     "spk_id": utt[:5] + gender, "session": str(k), "speaker": speaker_number(k, gender),
                     "emo": emo})
    if skipped:
        logger.warning("IEMOCAP: %d labelled utterances skipped (missing or unreadable audio): see all_skipped.txt",
                       len(skipped))
    if not rows:
        raise ValueError(f"No labelled IEMOCAP utterance with audio under {root}; expected {EXPECTED}.")
    rows.sort(key=lambda r: r["ID"])
    save_folder.mkdir(parents=True, exist_ok=True)
    write_csv(save_folder / "all.csv", CSV_COLUMNS, rows)
    write_skipped(save_folder / "all_skipped.txt", skipped)
    record_options(save_folder, options, "iemocap")
    return make_speaker_folds(rows, save_folder, test_speakers)
