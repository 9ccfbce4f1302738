"""Helpers shared by the dataset preparations: audio durations, the "already prepared" marker, splits.

CSV manifests are read and written with ``brq_att_alt.csv_files``."""

import json
from pathlib import Path
from typing import List, Sequence

import soundfile as sf


def audio_duration(path: Path) -> float:
    """Duration in seconds from the header (mp3 / wav / flac); falls back to decoding."""
    try:
        info = sf.info(str(path))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except Exception:  # header unreadable: decode it (raises a clear AudioReadError if bad)
        pass
    from .audio import read_audio

    return read_audio(path).numel() / 16000.0


def fmt_duration(duration: float) -> str:
    """Seconds as manifest text: 7 decimals at most, no trailing zeros."""
    return f"{duration:.7f}".rstrip("0").rstrip(".")


def already_prepared(save_folder: Path, files: Sequence[str], options: dict, name: str) -> bool:
    """True when every file exists and ``<name>_prepare.json`` records the same options."""
    marker = Path(save_folder) / f"{name}_prepare.json"
    if not all((Path(save_folder) / f).is_file() for f in files) or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == json.loads(json.dumps(options))
    except ValueError:
        return False


def record_options(save_folder: Path, options: dict, name: str) -> None:
    (Path(save_folder) / f"{name}_prepare.json").write_text(json.dumps(options, indent=2))


def split_every(items: List, ratio: float) -> tuple:
    """Deterministic split: every round(1/ratio)-th item goes to the second list."""
    if not ratio or ratio <= 0 or len(items) < 2:
        return list(items), []
    step = max(int(round(1.0 / ratio)), 2)
    first = [x for i, x in enumerate(items) if i % step != step - 1]
    second = [x for i, x in enumerate(items) if i % step == step - 1]
    return first, second
