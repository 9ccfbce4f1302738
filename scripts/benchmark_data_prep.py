#!/usr/bin/env python
"""Files per second of the LibriSpeech preparation (``brq_att_alt.data.prepare_librispeech``).

Generates a LibriSpeech-layout tree of --files short FLAC files (16 kHz, 16-bit, 0.5 to
1.5 s of a tone with noise; 100 utterances per chapter, with their trans.txt) in a
temporary folder, then times:

  first     the preparation from scratch: one walk of the split, every file checked
            (header + last samples decoded) in --workers processes, the CSV written
  serial    the same with one process (with --serial), for the speed-up
  re-run    the same call again on the prepared folder (options unchanged: no walk)

The files were just written (then synced to disk before timing), so they are in the page
cache: a first preparation on a cold disk or a network file system is slower, bounded by
the storage. The folder is
deleted at the end (--keep to keep it).

    python scripts/benchmark_data_prep.py [--files 50000] [--workers N] [--serial]
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from brq_att_alt.data import prepare_librispeech

SPLIT = "train-clean-100"
UTTS_PER_CHAPTER = 100
WORDS = "THE CAT SAT ON A MAT AND A DOG RAN AFTER IT".split()


def make_tree(root: Path, n_files: int, seed: int = 0) -> int:
    """``root/SPLIT/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` + trans.txt; returns the bytes written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    variants = []
    for k in range(8):  # a few different recordings, copied byte for byte (fast to write)
        n = int(16000 * (0.5 + k / 7))
        t = np.arange(n) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (150 + 40 * k) * t) + 0.01 * rng.standard_normal(n)
        path = root / f"variant{k}.flac"
        sf.write(str(path), (wave * 32767).astype(np.int16), 16000, subtype="PCM_16")
        variants.append(path.read_bytes())
        path.unlink()
    written = 0
    for i in range(n_files):
        spk, chapter, utt = 100 + i // (2 * UTTS_PER_CHAPTER), 1000 + (i // UTTS_PER_CHAPTER) % 2, i % UTTS_PER_CHAPTER
        folder = root / SPLIT / str(spk) / str(chapter)
        if utt == 0:
            folder.mkdir(parents=True, exist_ok=True)
            count = min(UTTS_PER_CHAPTER, n_files - i)
            lines = [f"{spk}-{chapter}-{u:04d} " + " ".join(WORDS[(u + j) % len(WORDS)] for j in range(6)) + "\n"
                     for u in range(count)]
            (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
        data = variants[i % len(variants)]
        (folder / f"{spk}-{chapter}-{utt:04d}.flac").write_bytes(data)
        written += len(data)
    return written


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50000)
    parser.add_argument("--workers", type=int, default=None, help="default: the CPUs this process may use")
    parser.add_argument("--serial", action="store_true", help="also time one process, for the speed-up")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the generated tree")
    args = parser.parse_args()

    from speechbrain.utils.parallel import get_available_cpu_count

    from brq_att_alt.benchmarking.report import machine_info

    info = machine_info("cpu")
    workers = args.workers or get_available_cpu_count()
    print(f"machine: {info['cpu']}, {info['usable_cpus']} usable CPUs, load average {info['load_average']}; "
          f"{workers} worker processes")
    root = Path(tempfile.mkdtemp(prefix="brq_prep_bench_", dir=args.dir))
    try:
        seconds, size = timed(lambda: make_tree(root / "LibriSpeech", args.files))
        sync, _ = timed(os.sync)  # the files' write-back must not run during the timed preparations
        print(f"generated {args.files} files ({size / 2**20:.0f} MiB) in {seconds:.1f} s under {root} "
              f"(+{sync:.1f} s to sync them to disk)")

        def prepare(save, n_workers):
            return prepare_librispeech(root / "LibriSpeech", root / save, splits=[SPLIT], num_workers=n_workers)

        first, out = timed(lambda: prepare("save", workers))
        rows = sum(1 for _ in open(out[SPLIT], encoding="utf-8")) - 1
        assert rows == args.files, f"{rows} rows for {args.files} files"
        print(f"first preparation: {first:.2f} s, {args.files / first:.0f} files/s ({workers} processes)")
        if args.serial:
            serial, _ = timed(lambda: prepare("save_serial", 1))
            print(f"first preparation, 1 process: {serial:.2f} s, {args.files / serial:.0f} files/s "
                  f"(parallel speed-up {serial / first:.2f}x)")
        rerun, _ = timed(lambda: prepare("save", workers))
        print(f"re-run on the prepared folder: {1000 * rerun:.1f} ms")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
