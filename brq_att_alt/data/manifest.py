"""Helpers shared by the dataset preparations: the audio check (duration or why not), the per-file
checks run in parallel with a progress bar, the "already prepared" marker, splits.

CSV manifests are read and written with ``brq_att_alt.csv_files``."""

import json
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")

# Subtypes whose samples are floats, the only ones that can hold NaN / inf (FLAC and the
# integer PCM subtypes cannot): such files are decoded in full and checked.
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
TAIL_FRAMES = 1600  # the last 0.1 s at 16 kHz is decoded: catches truncated files
NON_FINITE = "non-finite samples"
# Below this many files a process pool costs more than it saves: checked in this process.
PARALLEL_MIN_FILES = 256


def check_audio_file(path) -> Tuple[Optional[float], Optional[str]]:
    """(duration in seconds, None) for a usable audio file, or (None, why it is not).

    Reads the header, then decodes the last ``TAIL_FRAMES`` frames (a truncated file
    fails there); float WAV-style files (``FLOAT_SUBTYPES``) are decoded in full, in
    blocks, and rejected with ``NON_FINITE`` if a sample is NaN or infinite. Never
    raises: this runs in worker processes over hundreds of thousands of files.
    """
    try:
        with sf.SoundFile(str(path)) as fh:
            frames, rate, subtype = fh.frames, fh.samplerate, fh.subtype
            if frames <= 0 or rate <= 0:
                return None, f"unreadable audio: no samples (frames={frames}, samplerate={rate})"
            if subtype in FLOAT_SUBTYPES:
                decoded = 0
                for block in fh.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                    if not np.isfinite(block).all():
                        return None, NON_FINITE
                    decoded += len(block)
                if decoded != frames:
                    return None, f"unreadable audio: decoded {decoded} frames, header says {frames}"
            else:
                fh.seek(max(frames - TAIL_FRAMES, 0))
                if len(fh.read(TAIL_FRAMES, dtype="int16")) != min(TAIL_FRAMES, frames):
                    return None, "unreadable audio: truncated, the last samples cannot be read"
        return frames / rate, None
    except Exception as err:  # noqa: BLE001  corrupt / unreadable / not audio
        return None, f"unreadable audio: {err}".replace("\n", " ")


def map_files(fn: Callable[[T], R], items: Iterable[T], desc: str, num_workers: Optional[int] = None,
              progress: bool = True, chunk_size: int = 256) -> List[R]:
    """``[fn(item) for item in items]`` in order, in ``num_workers`` processes with a progress bar.

    SpeechBrain's ``parallel_map`` (a process pool fed in chunks of ``chunk_size``);
    ``num_workers`` None = the CPUs this process may use (SpeechBrain's count: respects
    ``SB_NUM_PROC`` and SLURM / affinity limits). One worker, or fewer than
    ``PARALLEL_MIN_FILES`` items: in this process. ``fn`` must be picklable (module level);
    items are best plain strings (a ``Path`` costs more to send to a worker).
    """
    from speechbrain.utils.parallel import get_available_cpu_count, parallel_map

    items = list(items)
    workers = get_available_cpu_count() if num_workers is None else int(num_workers)
    if workers <= 1 or len(items) < PARALLEL_MIN_FILES:
        return [fn(item) for item in tqdm(items, desc=desc, disable=not progress, unit="file")]
    return list(parallel_map(fn, items, process_count=workers, chunk_size=chunk_size, progress_bar=progress,
                             progress_bar_kwargs={"desc": desc, "unit": "file", "smoothing": 0.02}))


def write_skipped(path: Path, skipped: Sequence[Tuple[object, str]]) -> Path:
    """``<split>_skipped.txt``: one ``<absolute path>\t<reason>`` line per file left out."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for file, reason in skipped:
            fh.write(f"{Path(file).resolve()}\t{reason}\n")
    tmp.replace(path)
    return path


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
