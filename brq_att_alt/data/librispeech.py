"""LibriSpeech preparation: SpeechBrain CSV manifests from the LibriSpeech layout.

Expected layout (the official one, also written by ``synthetic.py``)::

    <data_folder>/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac
    <data_folder>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt   ("ID WORDS" lines)

Output: ``<save_folder>/<split>.csv`` with columns ``ID,duration,wav,spk_id,wrd``
(duration in seconds, wav an absolute path, spk_id the LibriSpeech speaker
number), sorted by ID, plus ``<split>_skipped.txt`` (files left out, with the
reason) and ``<split>_prepare.json`` (the options, to skip re-preparation).

Built for the full 960 h (281k files): one walk of each split folder, then the per-file
checks (``manifest.check_audio_file``: header, the last samples decoded, float files
decoded in full for NaN / inf) in parallel processes with a progress bar. A split
whose CSV exists and whose recorded options match is not walked again, so a re-run on
a prepared folder takes milliseconds; re-preparing gives the same files.

Call it through ``speechbrain.utils.distributed.run_on_main`` in multi-process
runs; it only writes files.
"""

import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..csv_files import csv_columns, read_csv, write_csv
from .manifest import already_prepared, check_audio_file, fmt_duration, map_files, record_options, write_skipped

logger = logging.getLogger(__name__)

DEFAULT_SPLITS = ("train-clean-100", "dev-clean", "test-clean")
CSV_COLUMNS = ("ID", "duration", "wav", "spk_id", "wrd")
PREP_VERSION = 2  # 2: float files checked for non-finite samples
AUDIO_EXT = ".flac"
TRANS_EXT = ".trans.txt"


def _csv_path(save_folder: Path, split: str) -> Path:
    return save_folder / f"{split}.csv"


def _skipped_path(save_folder: Path, split: str) -> Path:
    return save_folder / f"{split}_skipped.txt"


def prepare_librispeech(data_folder: Union[str, Path], save_folder: Union[str, Path],
                        splits: Sequence[str] = DEFAULT_SPLITS,
                        min_duration: Optional[float] = None,
                        max_duration: Optional[float] = None,
                        num_workers: Optional[int] = None,
                        progress: bool = True) -> Dict[str, str]:
    """Write ``<save_folder>/<split>.csv`` for each split; returns {split: csv path}.

    Arguments
    ---------
    data_folder: the LibriSpeech folder (the one holding ``train-clean-100`` ...).
        A folder holding ``LibriSpeech/<split>`` is accepted too.
    save_folder: where the CSV files go (created).
    splits: split folder names.
    min_duration, max_duration: keep utterances with min <= duration <= max (s).
    num_workers: processes for the per-file checks; None = the CPUs this process may
        use (``SB_NUM_PROC`` overrides it), 1 = in this process.
    progress: show a progress bar per split.

    A split is re-prepared only when its CSV is missing or the options (data
    folder, duration limits, preparation version) differ from the recorded ones.
    Unreadable or truncated files, files with NaN / infinite samples and audio
    without a transcript line are logged, left out and listed in ``<split>_skipped.txt``.
    """
    save_folder = Path(save_folder).expanduser()
    if isinstance(splits, str):
        splits = [splits]
    splits = list(splits)
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise ValueError(f"min_duration ({min_duration}) > max_duration ({max_duration})")
    if not splits:
        raise ValueError("No split to prepare (splits is empty)")

    root = _find_root(Path(data_folder).expanduser(), splits)
    save_folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        options = {
            "version": PREP_VERSION,
            "data_folder": str(root.resolve()),
            "split": split,
            "min_duration": min_duration,
            "max_duration": max_duration,
        }
        if already_prepared(save_folder, [_csv_path(save_folder, split).name], options, split):
            logger.info("%s already prepared with the same options, skipping", _csv_path(save_folder, split))
            continue
        _prepare_split(root / split, split, save_folder, options, num_workers, progress)
    return {split: str(_csv_path(save_folder, split)) for split in splits}


def _find_root(data_folder: Path, splits: List[str]) -> Path:
    """The folder that holds the split folders; clear errors otherwise."""
    if not data_folder.is_dir():
        raise FileNotFoundError(
            f"LibriSpeech data_folder {data_folder} does not exist or is not a folder; expected "
            f"a folder holding {', '.join(splits)} (e.g. .../LibriSpeech)."
        )
    for candidate in (data_folder, data_folder / "LibriSpeech"):
        if all((candidate / split).is_dir() for split in splits):
            if candidate != data_folder:
                logger.info("Using %s as the LibriSpeech folder", candidate)
            return candidate
    for candidate in (data_folder, data_folder / "LibriSpeech"):
        present = [s for s in splits if (candidate / s).is_dir()]
        if present:
            missing = [s for s in splits if s not in present]
            raise FileNotFoundError(
                f"LibriSpeech split folder(s) {missing} not found in {candidate} "
                f"(found {present}); expected {candidate}/<split>/<spk>/<chapter>/"
                "<spk>-<chapter>-<utt>.flac. Download/extract them or change `splits`."
            )
    content = sorted(p.name for p in data_folder.iterdir())[:10]
    raise FileNotFoundError(
        f"{data_folder} does not look like LibriSpeech: none of the split folders "
        f"{splits} is in it (it holds {content}). Expected "
        f"{data_folder}/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac with "
        "<spk>-<chapter>.trans.txt next to them."
    )


def _walk_split(split_dir: Path) -> Tuple[List[Path], List[Path]]:
    """(audio files, transcript files) under ``split_dir``, sorted, in one walk (os.walk).

    The paths are absolute: the walk starts from the resolved split folder (resolving
    each of 281k files instead costs a chain of lstat calls per file)."""
    audio, transcripts = [], []
    for folder, subfolders, names in os.walk(split_dir.resolve(), followlinks=True):
        subfolders.sort()
        for name in names:
            if name.endswith(AUDIO_EXT):
                audio.append(Path(folder, name))
            elif name.endswith(TRANS_EXT):
                transcripts.append(Path(folder, name))
    return sorted(audio), sorted(transcripts)


def _read_transcripts(trans_files: Sequence[Path]) -> Dict[str, str]:
    texts: Dict[str, str] = {}
    for trans in trans_files:
        with open(trans, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                uid, _, words = line.partition(" ")
                words = " ".join(words.split())
                if not words:
                    logger.warning("%s:%d has no words for %s; ignored", trans, lineno, uid)
                    continue
                if uid in texts and texts[uid] != words:
                    logger.warning("%s:%d repeats utterance %s with another text; "
                                   "keeping the first", trans, lineno, uid)
                    continue
                texts[uid] = words
    return texts


def _prepare_split(split_dir: Path, split: str, save_folder: Path, options: dict,
                   num_workers: Optional[int], progress: bool):
    audio_files, trans_files = _walk_split(split_dir)
    texts = _read_transcripts(trans_files)
    if not audio_files and not texts:
        raise ValueError(
            f"LibriSpeech split folder {split_dir} holds no {AUDIO_EXT} file and no "
            "*.trans.txt; expected <spk>/<chapter>/<spk>-<chapter>-<utt>.flac with "
            "<spk>-<chapter>.trans.txt next to them."
        )
    if not audio_files:
        raise ValueError(f"No {AUDIO_EXT} audio file under {split_dir} (it has transcripts)")
    if not texts:
        raise ValueError(
            f"No transcript under {split_dir}: expected <spk>-<chapter>.trans.txt files "
            "with 'ID WORDS' lines next to the audio."
        )

    skipped: List[Tuple[Path, str]] = []
    candidates = []
    for path in audio_files:
        if path.name[: -len(AUDIO_EXT)] in texts:
            candidates.append(path)
        else:
            logger.warning("No transcript line for %s; skipped", path)
            skipped.append((path, "no transcript line"))
    checks = map_files(check_audio_file, [str(p) for p in candidates], desc=f"{split}: checking audio",
                       num_workers=num_workers, progress=progress)

    rows = []
    too_short = too_long = 0
    seen = set()
    lo, hi = options["min_duration"], options["max_duration"]
    for path, (duration, problem) in zip(candidates, checks):
        uid = path.name[: -len(AUDIO_EXT)]
        if uid in seen:
            logger.warning("Duplicate utterance id %s (%s); skipped", uid, path)
            skipped.append((path, "duplicate utterance id"))
            continue
        if problem is not None:  # corrupt / truncated / NaN: never crash, never train on it
            logger.warning("Audio file %s skipped: %s", path, problem)
            skipped.append((path, problem))
            continue
        seen.add(uid)
        if lo is not None and duration < lo:
            too_short += 1
            continue
        if hi is not None and duration > hi:
            too_long += 1
            continue
        rows.append({"ID": uid, "duration": duration, "wav": str(path), "spk_id": uid.split("-")[0],
                     "wrd": texts[uid]})

    missing_audio = len(set(texts) - {p.name[: -len(AUDIO_EXT)] for p in audio_files})
    if missing_audio:
        logger.warning("%s: %d transcript lines have no audio file", split, missing_audio)
    if not rows:
        raise ValueError(
            f"No usable utterance in {split_dir}: {len(audio_files)} audio files, "
            f"{len(skipped)} skipped, {too_short} shorter than {lo} s, "
            f"{too_long} longer than {hi} s."
        )
    rows.sort(key=lambda r: r["ID"])
    hours = sum(r["duration"] for r in rows) / 3600
    for row in rows:
        row["duration"] = fmt_duration(row["duration"])

    csv_file = write_csv(_csv_path(save_folder, split), CSV_COLUMNS, rows)
    write_skipped(_skipped_path(save_folder, split), skipped)
    record_options(save_folder, options, split)  # last: a half-prepared split is redone
    logger.info(
        "%s: %d utterances (%.2f h) -> %s; %d skipped (listed in %s), %d too short, %d too long",
        split, len(rows), hours, csv_file, len(skipped), _skipped_path(save_folder, split).name,
        too_short, too_long,
    )


def merge_manifests(csv_paths: Sequence[Union[str, Path]], out_csv: Union[str, Path]) -> Path:
    """Concatenate CSV manifests that share a header into ``out_csv`` (one header)."""
    columns, rows = None, []
    for path in csv_paths:
        header = csv_columns(path)
        if columns is not None and header != columns:
            raise ValueError(f"{path} has columns {header}, the first manifest {columns}: cannot merge")
        columns = header
        rows += read_csv(path)
    if columns is None:
        raise ValueError("No manifest to merge")
    return write_csv(out_csv, columns, rows)


def prepare_recipe_manifests(
    data_folder: Union[str, Path],
    manifest_folder: Union[str, Path],
    train_splits: Sequence[str],
    other_splits: Sequence[str],
    train_csv: Union[str, Path],
    min_duration: Optional[float] = None,
    max_duration: Optional[float] = None,
) -> None:
    """The data step of the LibriSpeech-layout recipes (pre-training, CTC fine-tuning): one
    manifest per split in ``manifest_folder``, the train splits concatenated into ``train_csv``."""
    splits = list(dict.fromkeys([*train_splits, *other_splits]))
    prepare_librispeech(data_folder, manifest_folder, splits=splits, min_duration=min_duration, max_duration=max_duration)
    merge_manifests([Path(manifest_folder) / f"{split}.csv" for split in train_splits], train_csv)
