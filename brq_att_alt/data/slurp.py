"""SLURP preparation for intent (scenario) classification.

Expected layout (the official release: github.com/pswietojanski/slurp)::

    <data_folder>/dataset/slurp/train.jsonl, devel.jsonl, test.jsonl
    <data_folder>/slurp_real/<recording>.flac       (and slurp_synth/ for train_synthetic)

Each jsonl line is a JSON object with ``scenario``, ``intent``, ``sentence`` and
``recordings`` (a list of ``{"file": ...}``); one manifest row per recording.
``data_folder`` may also hold the jsonl files directly, and the audio may sit in
``<data_folder>/audio/slurp_real``. Output ``<save_folder>/{train,dev,test}.csv``
with columns ``ID,duration,wav,scenario,intent,wrd`` (``devel`` -> ``dev``), and
``<split>_skipped.txt``: recordings left out (missing, unreadable, truncated, non-finite
samples: ``manifest.check_audio_file``, in parallel) with the reason.
"""

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Union

from ..csv_files import write_csv
from .manifest import already_prepared, check_audio_file, fmt_duration, map_files, record_options, write_skipped

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("ID", "duration", "wav", "scenario", "intent", "wrd")
SPLITS = {"train": "train", "dev": "devel", "test": "test"}
EXPECTED = ("<data_folder>/dataset/slurp/{train,devel,test}.jsonl and the audio in "
            "<data_folder>/slurp_real/*.flac")


def _find(data_folder: Path):
    jsonl_dir = next((d for d in (data_folder / "dataset" / "slurp", data_folder)
                      if all((d / f"{n}.jsonl").is_file() for n in SPLITS.values())), None)
    audio_dirs = [d for d in (data_folder / "slurp_real", data_folder / "audio" / "slurp_real",
                              data_folder / "slurp_synth", data_folder / "audio" / "slurp_synth")
                  if d.is_dir()]
    return jsonl_dir, audio_dirs


def prepare_slurp(data_folder: Union[str, Path], save_folder: Union[str, Path],
                  use_synthetic: bool = False, max_duration: Optional[float] = None) -> Dict[str, str]:
    """Write train/dev/test CSVs (train_synthetic added to train when ``use_synthetic``)."""
    save_folder = Path(save_folder)
    out = {k: str(save_folder / f"{k}.csv") for k in SPLITS}
    data_folder = Path(data_folder).expanduser()
    if not data_folder.is_dir():
        raise FileNotFoundError(f"SLURP data_folder {data_folder} does not exist; expected {EXPECTED}.")
    jsonl_dir, audio_dirs = _find(data_folder)
    if jsonl_dir is None or not audio_dirs:
        content = sorted(p.name for p in data_folder.iterdir())[:10]
        what = "the jsonl files" if jsonl_dir is None else "the audio folder slurp_real/"
        raise FileNotFoundError(f"{data_folder} does not look like SLURP: it lacks {what} (it holds {content}); "
                                f"expected {EXPECTED}.")
    options = {"data_folder": str(data_folder.resolve()), "use_synthetic": use_synthetic,
               "max_duration": max_duration}
    if already_prepared(save_folder, [f"{k}.csv" for k in SPLITS], options, "slurp"):
        return out
    save_folder.mkdir(parents=True, exist_ok=True)
    for name, source in SPLITS.items():
        sources = [source] + (["train_synthetic"] if name == "train" and use_synthetic else [])
        candidates: List[tuple] = []  # (uid, wav, record), each recording once
        seen, missing = set(), []
        for src in sources:
            path = jsonl_dir / f"{src}.jsonl"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found; expected {EXPECTED}.")
            with open(path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                        scenario, recordings = rec["scenario"], rec["recordings"]
                    except (ValueError, KeyError) as err:
                        raise ValueError(f"{path}:{lineno}: not a SLURP record ({err})") from err
                    for recording in recordings:
                        fname = recording["file"]
                        wav = next((d / fname for d in audio_dirs if (d / fname).is_file()), None)
                        if wav is None:
                            missing.append((audio_dirs[0] / fname, "missing audio"))
                            continue
                        uid = Path(fname).stem
                        if uid not in seen:
                            seen.add(uid)
                            candidates.append((uid, wav, scenario, rec))
        checks = map_files(check_audio_file, [str(c[1]) for c in candidates], desc=f"SLURP {name}: checking audio")
        rows, skipped = [], list(missing)
        for (uid, wav, scenario, rec), (duration, problem) in zip(candidates, checks):
            if problem is not None:  # unreadable, truncated or non-finite samples
                skipped.append((wav, problem))
                continue
            if max_duration is not None and duration > max_duration:
                continue
            rows.append({"ID": uid, "duration": fmt_duration(duration), "wav": str(wav.resolve()),
                         "scenario": scenario, "intent": rec.get("intent", ""),
                         "wrd": " ".join(str(rec.get("sentence", "")).upper().split())})
        if not rows:
            raise ValueError(f"No usable SLURP recording of {sources} in {[str(d) for d in audio_dirs]} "
                             f"({len(missing)} missing, {len(skipped) - len(missing)} unreadable); expected {EXPECTED}.")
        if skipped:
            logger.warning("SLURP %s: %d recordings skipped (missing or unreadable): see %s_skipped.txt",
                           name, len(skipped), name)
        write_csv(save_folder / f"{name}.csv", CSV_COLUMNS, rows)
        write_skipped(save_folder / f"{name}_skipped.txt", skipped)
    record_options(save_folder, options, "slurp")
    return out
