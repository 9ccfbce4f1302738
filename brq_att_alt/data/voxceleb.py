"""VoxCeleb1 preparation for speaker verification (train / valid / test manifests + trials).

Expected layout (the official VoxCeleb1 release)::

    <data_folder>/wav/<speaker id10001>/<youtube id>/<00001>.wav
    <data_folder>/veri_test2.txt          (or veri_test.txt; or pass trial_list=)

The dev and test archives extracted into one ``wav/`` folder, or kept apart as
``vox1_dev_wav/wav`` and ``vox1_test_wav/wav``, are both accepted. Trial lines read
``label enrol test`` with paths relative to ``wav/``
(``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``).

Output in ``save_folder``:

* ``train.csv`` / ``valid.csv``: utterances of the speakers absent from the trial
  list (``valid_ratio`` of each speaker's utterances held out for the classifier's
  accuracy); columns ``ID,duration,wav,spk_id``; ID = the path relative to ``wav/``.
* ``test.csv``: every utterance the trial list names (ID = its trial-list path).
* ``trials.txt``: the trial list, copied (less the trials of any test file left out).

Trial lists (``read_trial_list`` / ``write_trial_list``) use the VoxCeleb format, one
trial a line: ``label enrol test`` with label 1 (same speaker) or 0.
* ``train_skipped.txt`` / ``test_skipped.txt``: files left out (unreadable, truncated,
  NaN / infinite samples), with the reason.

``crop_manifest`` turns a manifest into MP3S's training layout: one entry per whole
``seconds`` of each utterance (SpeechBrain's ``voxceleb_prepare`` chunks), each read as a
random crop of the whole utterance (``audio_dataset(crop_seconds=...)``).

The per-file checks (``manifest.check_audio_file``) run in parallel processes with a
progress bar (153k files for VoxCeleb1). A folder prepared with the same options is not
walked again: a re-run takes milliseconds.
"""

import logging
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from ..csv_files import read_csv, write_csv
from .manifest import (
    already_prepared, check_audio_file, fmt_duration, map_files, record_options, split_every, write_skipped,
)

logger = logging.getLogger(__name__)

Trial = Tuple[int, str, str]  # (label: 1 same speaker / 0, enrol utterance, test utterance)

CSV_COLUMNS = ("ID", "duration", "wav", "spk_id")
PREP_VERSION = 2  # 2: files checked in full (truncation, NaN / inf) and left out if bad
TRIAL_NAMES = ("veri_test2.txt", "veri_test.txt", "list_test_O.txt")
EXPECTED = ("<data_folder>/wav/<speaker id>/<youtube id>/<utt>.wav (or vox1_dev_wav/wav and "
            "vox1_test_wav/wav) plus a trial list veri_test2.txt ('label enrol test' lines)")


def read_trial_list(path: Union[str, Path]) -> List[Trial]:
    """Read ``label enrol test`` lines (VoxCeleb format); clear errors on bad lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Trial list not found: {path} (expected 'label enrol test' lines)")
    trials: List[Trial] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or parts[0] not in ("0", "1"):
                raise ValueError(
                    f"{path}:{lineno}: expected 'label enrol test' with label 0 or 1 "
                    f"(VoxCeleb format), got {line.strip()!r}"
                )
            trials.append((int(parts[0]), parts[1], parts[2]))
    if not trials:
        raise ValueError(f"Trial list {path} holds no trial")
    return trials


def write_trial_list(trials: Iterable[Trial], path: Union[str, Path]) -> Path:
    """Write trials as ``label enrol test`` lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for label, enrol, test in trials:
            fh.write(f"{int(label)} {enrol} {test}\n")
    return path


def crop_manifest(csv_path: Union[str, Path], out_path: Union[str, Path], seconds: float) -> Path:
    """Write ``out_path``: each row of ``csv_path`` repeated ``floor(duration / seconds)``
    times (at least once), IDs ``<ID>@<i>``: an epoch then sees as many random crops of
    ``seconds`` as the utterances hold, as MP3S's VoxCeleb training (one manifest row per
    3 s chunk, each read as a random 3 s crop). Other columns are kept; returns out_path."""
    if not seconds or seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    rows = read_csv(csv_path, required=("ID", "duration"))
    if not rows:
        raise ValueError(f"Manifest {csv_path} holds no utterance")
    out = [dict(row, ID=f"{row['ID']}@{i}") for row in rows
           for i in range(max(1, int(float(row["duration"]) // seconds)))]
    return write_csv(out_path, list(rows[0]), out)


def _wav_roots(data_folder: Path) -> List[Path]:
    roots = [p for p in (data_folder / "wav", data_folder / "vox1_dev_wav" / "wav",
                         data_folder / "vox1_test_wav" / "wav") if p.is_dir()]
    if not roots and any(p.is_dir() and p.name.startswith("id") for p in data_folder.iterdir()):
        roots = [data_folder]
    return roots


def prepare_voxceleb1(data_folder: Union[str, Path], save_folder: Union[str, Path],
                      trial_list: Optional[Union[str, Path]] = None, valid_ratio: float = 0.05,
                      num_workers: Optional[int] = None, progress: bool = True) -> Dict[str, str]:
    """Write train/valid/test CSVs and trials.txt; returns their paths.

    ``num_workers``: processes for the per-file checks (None = the CPUs this process may
    use, 1 = in this process); ``progress``: show a progress bar.
    """
    save_folder = Path(save_folder)
    out = {k: str(save_folder / f"{k}.csv") for k in ("train", "valid", "test")}
    out["trials"] = str(save_folder / "trials.txt")
    data_folder = Path(data_folder).expanduser()
    if not data_folder.is_dir():
        raise FileNotFoundError(f"VoxCeleb1 data_folder {data_folder} does not exist; expected {EXPECTED}.")
    roots = _wav_roots(data_folder)
    if not roots:
        content = sorted(p.name for p in data_folder.iterdir())[:10]
        raise FileNotFoundError(f"{data_folder} does not look like VoxCeleb1 (it holds {content}); expected {EXPECTED}.")
    if trial_list is None:
        found = [data_folder / n for n in TRIAL_NAMES if (data_folder / n).is_file()]
        if not found:
            raise FileNotFoundError(
                f"No trial list ({', '.join(TRIAL_NAMES)}) in {data_folder}; download veri_test2.txt "
                "from the VoxCeleb site next to wav/ or pass trial_list=."
            )
        trial_list = found[0]
    trial_list = Path(trial_list)
    options = {"version": PREP_VERSION, "data_folder": str(data_folder.resolve()),
               "trial_list": str(trial_list.resolve()), "valid_ratio": valid_ratio}
    if already_prepared(save_folder, ["train.csv", "valid.csv", "test.csv", "trials.txt"], options, "voxceleb"):
        return out
    trials = read_trial_list(trial_list)

    files: Dict[str, Path] = {}
    for root in roots:
        root = root.resolve()  # absolute paths without resolving each of 153k files
        for wav in sorted(root.glob("id*/*/*.wav")):
            files.setdefault(wav.relative_to(root).as_posix(), wav)
    if not files:
        raise FileNotFoundError(f"No <speaker>/<video>/<utt>.wav file under {[str(r) for r in roots]}; expected {EXPECTED}.")
    needed = sorted({u for _, e, t in trials for u in (e, t)})
    missing = [u for u in needed if u not in files]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} utterance(s) of the trial list {trial_list} are not under "
            f"{[str(r) for r in roots]}, e.g. {missing[:3]}: is the test archive extracted?"
        )
    test_speakers = {u.split("/")[0] for u in needed}
    by_speaker: Dict[str, List[str]] = {}
    for rel in files:
        spk = rel.split("/")[0]
        if spk not in test_speakers:
            by_speaker.setdefault(spk, []).append(rel)
    if not by_speaker:
        raise ValueError(f"Every speaker under {roots} is in the trial list: no training speaker left.")

    checked = sorted({r for rels in by_speaker.values() for r in rels} | set(needed))
    results = map_files(check_audio_file, [str(files[r]) for r in checked], desc="VoxCeleb1: checking audio",
                        num_workers=num_workers, progress=progress)
    duration, problems = {}, {}
    for rel, (seconds, problem) in zip(checked, results):
        if problem is None:
            duration[rel] = seconds
        else:
            logger.warning("Audio file %s skipped: %s", files[rel], problem)
            problems[rel] = problem

    def row(rel):
        return {"ID": rel, "duration": fmt_duration(duration[rel]), "wav": str(files[rel]),
                "spk_id": rel.split("/")[0]}

    train, valid = [], []
    for spk, rels in sorted(by_speaker.items()):
        tr, va = split_every([r for r in rels if r not in problems], valid_ratio)
        train += [row(r) for r in tr]
        valid += [row(r) for r in va]
    if not train:
        raise ValueError(f"No readable training utterance under {roots} (see train_skipped.txt in {save_folder}).")
    save_folder.mkdir(parents=True, exist_ok=True)
    write_skipped(save_folder / "train_skipped.txt",
                  [(files[r], problems[r]) for rels in by_speaker.values() for r in rels if r in problems])
    write_skipped(save_folder / "test_skipped.txt", [(files[r], problems[r]) for r in needed if r in problems])
    write_csv(save_folder / "train.csv", CSV_COLUMNS, train)
    write_csv(save_folder / "valid.csv", CSV_COLUMNS, valid or train[:1])
    write_csv(save_folder / "test.csv", CSV_COLUMNS, [row(r) for r in needed if r not in problems])
    kept = [t for t in trials if t[1] not in problems and t[2] not in problems]
    if len(kept) == len(trials):
        shutil.copyfile(trial_list, save_folder / "trials.txt")
    else:
        logger.warning("VoxCeleb1: %d of %d trials left out: they use a test file listed in test_skipped.txt",
                       len(trials) - len(kept), len(trials))
        write_trial_list(kept, save_folder / "trials.txt")
    record_options(save_folder, options, "voxceleb")
    logger.info("VoxCeleb1: %d train speakers (%d utts), %d test utterances, %d trials, %d files skipped",
                len(by_speaker), len(train), len(needed) - sum(r in problems for r in needed), len(kept),
                len(problems))
    return out
