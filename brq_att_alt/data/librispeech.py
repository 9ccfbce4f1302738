"""LibriSpeech preparation: SpeechBrain CSV manifests from the LibriSpeech layout.

Expected layout (the official one, also written by ``synthetic.py``)::

    <data_folder>/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac
    <data_folder>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt   ("ID WORDS" lines)

Output: ``<save_folder>/<split>.csv`` with columns ``ID,duration,wav,spk_id,wrd``
(duration in seconds, wav an absolute path, spk_id the LibriSpeech speaker
number), sorted by ID, plus ``<split>_skipped.txt`` (files left out, with the
reason) and ``<split>_prepare.json`` (the options, to skip re-preparation).

Call it through ``speechbrain.utils.distributed.run_on_main`` in multi-process
runs; it only writes files.
"""

import csv
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import soundfile as sf

logger = logging.getLogger(__name__)

DEFAULT_SPLITS = ("train-clean-100", "dev-clean", "test-clean")
CSV_COLUMNS = ("ID", "duration", "wav", "spk_id", "wrd")
PREP_VERSION = 1
AUDIO_EXT = ".flac"


def _csv_path(save_folder: Path, split: str) -> Path:
    return save_folder / f"{split}.csv"


def _opts_path(save_folder: Path, split: str) -> Path:
    return save_folder / f"{split}_prepare.json"


def _skipped_path(save_folder: Path, split: str) -> Path:
    return save_folder / f"{split}_skipped.txt"


def prepare_librispeech(data_folder: Union[str, Path], save_folder: Union[str, Path],
                        splits: Sequence[str] = DEFAULT_SPLITS,
                        min_duration: Optional[float] = None,
                        max_duration: Optional[float] = None,
                        skip_prep: bool = False,
                        check_audio: str = "tail") -> Dict[str, str]:
    """Write ``<save_folder>/<split>.csv`` for each split; returns {split: csv path}.

    Arguments
    ---------
    data_folder: the LibriSpeech folder (the one holding ``train-clean-100`` ...).
        A folder holding ``LibriSpeech/<split>`` is accepted too.
    save_folder: where the CSV files go (created).
    splits: split folder names.
    min_duration, max_duration: keep utterances with min <= duration <= max (s).
    skip_prep: do nothing, just return the CSV paths.
    check_audio: how hard to check each file: "header" (soundfile.info only),
        "tail" (also decode the last samples: catches truncated files, the
        default) or "full" (decode every file).

    A split is re-prepared only when its CSV is missing or the options (data
    folder, duration limits, check) differ from the recorded ones. Unreadable
    files and audio without a transcript line are logged, left out and listed
    in ``<split>_skipped.txt``.
    """
    save_folder = Path(save_folder).expanduser()
    if isinstance(splits, str):
        splits = [splits]
    splits = list(splits)
    out = {split: str(_csv_path(save_folder, split)) for split in splits}
    if skip_prep:
        return out
    if check_audio not in ("header", "tail", "full"):
        raise ValueError(f"check_audio must be 'header', 'tail' or 'full', got {check_audio!r}")
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
            "check_audio": check_audio,
        }
        csv_file = _csv_path(save_folder, split)
        if csv_file.is_file() and _read_json(_opts_path(save_folder, split)) == options:
            logger.info("%s already prepared with the same options, skipping", csv_file)
            continue
        _prepare_split(root / split, split, save_folder, options)
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


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


def _read_transcripts(split_dir: Path) -> Dict[str, str]:
    texts: Dict[str, str] = {}
    for trans in sorted(split_dir.rglob("*.trans.txt")):
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


def _audio_duration(path: Path, check_audio: str) -> float:
    """Duration in seconds; raises on an unreadable / truncated file."""
    info = sf.info(str(path))
    if info.frames <= 0 or info.samplerate <= 0:
        raise ValueError(f"no samples (frames={info.frames}, samplerate={info.samplerate})")
    if check_audio == "full":
        data, _ = sf.read(str(path), dtype="int16")
        if len(data) != info.frames:
            raise ValueError(f"decoded {len(data)} frames, header says {info.frames}")
    elif check_audio == "tail":
        with sf.SoundFile(str(path)) as fh:
            fh.seek(max(info.frames - 1600, 0))
            tail = fh.read(1600, dtype="int16")
            if len(tail) != min(1600, info.frames):
                raise ValueError("truncated: the last samples cannot be read")
    return info.frames / info.samplerate


def _prepare_split(split_dir: Path, split: str, save_folder: Path, options: dict):
    texts = _read_transcripts(split_dir)
    audio_files = sorted(split_dir.rglob(f"*{AUDIO_EXT}"))
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

    rows: List[Tuple[str, float, str, str, str]] = []
    skipped: List[Tuple[Path, str]] = []
    too_short = too_long = 0
    seen = set()
    lo, hi = options["min_duration"], options["max_duration"]
    for path in audio_files:
        uid = path.name[: -len(AUDIO_EXT)]
        if uid not in texts:
            logger.warning("No transcript line for %s; skipped", path)
            skipped.append((path, "no transcript line"))
            continue
        if uid in seen:
            logger.warning("Duplicate utterance id %s (%s); skipped", uid, path)
            skipped.append((path, "duplicate utterance id"))
            continue
        try:
            duration = _audio_duration(path, options["check_audio"])
        except Exception as err:  # corrupt / unreadable: never crash
            logger.warning("Unreadable audio file %s skipped: %s", path, err)
            skipped.append((path, f"unreadable audio: {err}".replace("\n", " ")))
            continue
        seen.add(uid)
        if lo is not None and duration < lo:
            too_short += 1
            continue
        if hi is not None and duration > hi:
            too_long += 1
            continue
        spk_id = uid.split("-")[0]
        rows.append((uid, duration, str(path.resolve()), spk_id, texts[uid]))

    missing_audio = len(set(texts) - {p.name[: -len(AUDIO_EXT)] for p in audio_files})
    if missing_audio:
        logger.warning("%s: %d transcript lines have no audio file", split, missing_audio)
    if not rows:
        raise ValueError(
            f"No usable utterance in {split_dir}: {len(audio_files)} audio files, "
            f"{len(skipped)} skipped, {too_short} shorter than {lo} s, "
            f"{too_long} longer than {hi} s."
        )
    rows.sort(key=lambda r: r[0])

    csv_file = _csv_path(save_folder, split)
    tmp = csv_file.with_name(csv_file.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for uid, duration, wav, spk_id, wrd in rows:
            writer.writerow([uid, f"{duration:.7f}".rstrip("0").rstrip("."), wav, spk_id, wrd])
    os.replace(tmp, csv_file)
    with open(_skipped_path(save_folder, split), "w", encoding="utf-8") as fh:
        for path, reason in skipped:
            fh.write(f"{path.resolve()}\t{reason}\n")
    _opts_path(save_folder, split).write_text(json.dumps(options, indent=2))
    logger.info(
        "%s: %d utterances (%.2f h) -> %s; %d skipped (listed in %s), %d too short, %d too long",
        split, len(rows), sum(r[1] for r in rows) / 3600, csv_file, len(skipped),
        _skipped_path(save_folder, split).name, too_short, too_long,
    )


def merge_manifests(csv_paths: Sequence[Union[str, Path]], out_csv: Union[str, Path]) -> Path:
    """Concatenate CSV manifests that share a header into ``out_csv`` (one header)."""
    lines: List[str] = []
    for i, path in enumerate(csv_paths):
        rows = Path(path).read_text(encoding="utf-8").splitlines()
        lines += rows if i == 0 else rows[1:]
    Path(out_csv).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(out_csv)


def prepare_recipe_manifests(
    data_folder: Union[str, Path],
    manifest_folder: Union[str, Path],
    train_splits: Sequence[str],
    other_splits: Sequence[str],
    train_csv: Union[str, Path],
    min_duration: Optional[float] = None,
    max_duration: Optional[float] = None,
    synthetic_folder: Optional[Union[str, Path]] = None,
    synthetic_options: Optional[dict] = None,
) -> None:
    """The data step of the LibriSpeech-layout recipes (pre-training, CTC fine-tuning).

    If ``data_folder`` is ``synthetic_folder``, the synthetic corpus is made there first
    (nothing is done when it is complete). Then one manifest per split is written to
    ``manifest_folder`` and the train splits are concatenated into ``train_csv``.
    """
    data_folder = Path(data_folder)
    if synthetic_folder is not None and data_folder.resolve() == Path(synthetic_folder).resolve():
        from .synthetic import make_synthetic_corpus

        make_synthetic_corpus(data_folder, **(synthetic_options or {}))
    splits = list(dict.fromkeys([*train_splits, *other_splits]))
    prepare_librispeech(data_folder, manifest_folder, splits=splits, min_duration=min_duration, max_duration=max_duration)
    merge_manifests([Path(manifest_folder) / f"{split}.csv" for split in train_splits], train_csv)
