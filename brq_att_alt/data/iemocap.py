"""IEMOCAP preparation for 4-class emotion recognition with leave-one-session-out folds.

Expected layout (``IEMOCAP_full_release``)::

    <data_folder>/Session<k>/sentences/wav/<dialog>/<utterance>.wav
    <data_folder>/Session<k>/dialog/EmoEvaluation/<dialog>.txt
        lines "[start - end]<TAB><utterance><TAB><emotion><TAB>[v, a, d]"

Emotions kept: neutral, happy (+ excited merged into happy, the usual 4-class
setting), sad, angry. ``data_folder`` may also be the folder holding
``IEMOCAP_full_release``. Output in ``save_folder``:

* ``all.csv``: ``ID,duration,wav,spk_id,session,emo`` (spk_id e.g. ``Ses01F``);
* ``fold_<k>/{train,valid,test}.csv``: session k is the test set, every
  ``round(1/valid_ratio)``-th utterance of the other sessions the validation set.

:func:`make_session_folds` builds the folds from any such rows (the synthetic
corpus uses it with speaker groups as sessions).
"""

import logging
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from ..csv_files import read_csv, write_csv
from .manifest import already_prepared, audio_duration, fmt_duration, record_options, split_every

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("ID", "duration", "wav", "spk_id", "session", "emo")
EMOTIONS = {"neu": "neu", "hap": "hap", "exc": "hap", "sad": "sad", "ang": "ang"}
_LINE = re.compile(r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\s+(\S+)\s+(\S+)\s+\[")
EXPECTED = ("<data_folder>/Session<k>/sentences/wav/<dialog>/<utt>.wav and "
            "<data_folder>/Session<k>/dialog/EmoEvaluation/<dialog>.txt (IEMOCAP_full_release)")


def make_session_folds(rows: Sequence[dict], save_folder: Union[str, Path],
                       test_sessions: Optional[Iterable] = None, valid_ratio: float = 0.1) -> Dict[str, Dict[str, str]]:
    """Write ``fold_<k>/{train,valid,test}.csv`` (test = session k); returns {k: {name: path}}."""
    save_folder = Path(save_folder)
    sessions = sorted({str(r["session"]) for r in rows}, key=lambda s: (len(s), s))
    if len(sessions) < 2:
        raise ValueError(f"Leave-one-session-out needs >= 2 sessions, found {sessions}")
    wanted = sessions if test_sessions is None else [str(s) for s in test_sessions]
    out = {}
    for k in wanted:
        if k not in sessions:
            raise ValueError(f"Test session {k} not in the data (sessions: {sessions})")
        rest = [r for r in rows if str(r["session"]) != k]
        train, valid = split_every(rest, valid_ratio)
        fold = save_folder / f"fold_{k}"
        paths = {}
        for name, part in (("train", train), ("valid", valid or train[:1]),
                           ("test", [r for r in rows if str(r["session"]) == k])):
            paths[name] = str(write_csv(fold / f"{name}.csv", CSV_COLUMNS, part))
        out[k] = paths
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
                    test_sessions: Optional[Iterable[int]] = None,
                    valid_ratio: float = 0.1) -> Dict[str, Dict[str, str]]:
    """Write all.csv and the leave-one-session-out folds; returns {session: {train,valid,test}}."""
    save_folder = Path(save_folder)
    root = _find_root(Path(data_folder).expanduser())
    options = {"data_folder": str(root.resolve())}
    if already_prepared(save_folder, ["all.csv"], options, "iemocap"):
        return make_session_folds(read_csv(save_folder / "all.csv"), save_folder, test_sessions, valid_ratio)
    rows: List[dict] = []
    missing = 0
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
                    missing += 1
                    continue
                speaker = utt[:5] + utt.split("_")[-1][0]  # Ses01F_impro01_M003 -> Ses01M
                rows.append({"ID": utt, "duration": fmt_duration(audio_duration(wav)), "wav": str(wav.resolve()),
                             "spk_id": speaker, "session": str(k), "emo": EMOTIONS[m.group(4)]})
    if missing:
        logger.warning("IEMOCAP: %d labelled utterances have no wav file; skipped", missing)
    if not rows:
        raise ValueError(f"No labelled IEMOCAP utterance with audio under {root}; expected {EXPECTED}.")
    rows.sort(key=lambda r: r["ID"])
    save_folder.mkdir(parents=True, exist_ok=True)
    write_csv(save_folder / "all.csv", CSV_COLUMNS, rows)
    record_options(save_folder, options, "iemocap")
    return make_session_folds(rows, save_folder, test_sessions, valid_ratio)
