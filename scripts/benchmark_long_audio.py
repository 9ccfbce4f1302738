#!/usr/bin/env python
"""Hours of audio in one pass on CPU: real-time factor and peak resident memory against length.

A randomly initialised base encoder (``brq_att_alt.sizes``, default SummaryMixing) with a
CTC head is saved in the layout of a fine-tuning run (``brq_model.json``, ``ctc_head.json``,
``tokenizer.json``, ``CKPT+exported/{model,head}.ckpt``); random 16 kHz audio of each
length is written as WAV. Each (length, interface) then runs in a fresh process:

* ``api``: ``BestRQTranscriber.from_folder(FOLDER).transcribe_file(WAV)`` (the public
  inference interface, one pass for a linear mixer): the time of that call;
* ``cli``: ``python -m brq_att_alt.transcribe --model FOLDER WAV``: the whole process's
  wall time (start-up, imports and model loading included).

Real-time factor = seconds of compute / seconds of audio. Peak memory = the process's
peak resident set (``ru_maxrss`` of that child, from ``os.wait4``), weights, Python and
torch included; ``api`` runs also give the transcription's own peak (the resident-set
high-water mark reset after loading, minus the resident set then). Memory against length
is fitted with a line (least squares): slope in MiB per minute of audio, intercept, and
the largest residual, to show that it is linear.

``--mixer mhsa`` runs relative-position MHSA in one pass (``chunk_seconds=0``); its ``api``
runs get an address-space limit above what the process holds after its imports
(``--memory-limit-gb``, default 80% of the available memory), so that running out of memory
fails in the child (status oom) instead of waking the OS's OOM killer; use short lengths
(``--minutes 1 2 3 4 --interfaces api``) to find its longest input.

Outputs in --out: long_audio.csv (one row per run), long_audio.md (table and fit), machine.txt.

Examples:
  python scripts/benchmark_long_audio.py                                 # 10, 30, 60 min, api and cli
  python scripts/benchmark_long_audio.py --mixer mhsa --minutes 1 2 3 4 --interfaces api
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
COLUMNS = ["mixer", "interface", "minutes", "audio_s", "status", "compute_s", "rtf", "peak_rss_mib",
           "rss_after_load_mib", "transcribe_peak_mib", "load_s", "threads", "frames", "error"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mixer", default="summarymixing", help="registered mixer (base size); default summarymixing")
    p.add_argument("--minutes", type=float, nargs="+", default=[10, 30, 60], help="audio lengths (default 10 30 60)")
    p.add_argument("--interfaces", nargs="+", default=["api", "cli"], choices=["api", "cli"])
    p.add_argument("--threads", type=int, default=1, help="torch threads of each run (default 1)")
    p.add_argument("--memory-limit-gb", type=float, default=None,
                   help="address-space limit of each run (default: none for linear mixers, 80%% of the "
                        "available memory for mhsa)")
    p.add_argument("--out", default="results/long_audio", help="output folder (model and audio go in its work/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", nargs=3, metavar=("FOLDER", "WAV", "RESULT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- the model and the audio
def make_model_folder(folder: Path, mixer: str, seed: int) -> Path:
    """A random base encoder + CTC head saved as a fine-tuning run (``BestRQTranscriber.from_folder``)."""
    import torch

    from brq_att_alt.inference import HEAD_CKPT_NAME, CTCHead, save_asr_config
    from brq_att_alt.model import BestRQModel
    from brq_att_alt.pretrained import save_pretrained
    from brq_att_alt.sizes import model_config
    from brq_att_alt.text import CharTokenizer

    config = model_config(mixer, "base")
    marker = folder / "made_for.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"config": config, "seed": seed}:
        return folder
    torch.manual_seed(seed)
    model = BestRQModel(**config)
    save_pretrained(model, folder)
    tokenizer = CharTokenizer()
    head = CTCHead(config["d_model"], tokenizer.vocab_size)
    save_asr_config(head, tokenizer, folder)
    torch.save(head.state_dict(), folder / "CKPT+exported" / HEAD_CKPT_NAME)
    marker.write_text(json.dumps({"config": config, "seed": seed}))
    return folder


def make_audio(path: Path, minutes: float, seed: int) -> Path:
    """``minutes`` of random 16-bit 16 kHz audio (speech-band noise; the content does not change the cost)."""
    import soundfile as sf

    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    n = int(round(minutes * 60 * SAMPLE_RATE))
    tmp = path.with_suffix(".tmp.wav")
    with sf.SoundFile(str(tmp), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16") as f:
        for start in range(0, n, 60 * SAMPLE_RATE):  # a minute at a time
            block = rng.normal(0.0, 0.1, size=min(60 * SAMPLE_RATE, n - start)).clip(-1, 1)
            f.write(block.astype(np.float32))
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- one run, in a fresh process
LIMIT_ENV = "BRQ_LONG_AUDIO_MEMORY_LIMIT"  # bytes of address space a worker may add after its imports


def worker(folder: str, wav: str, result: str, threads: int) -> int:
    """The ``api`` run: load, then time one ``transcribe_file``; the result goes to a JSON file."""
    import torch

    from brq_att_alt.benchmarking.measure import CpuPeakMemory, proc_status_kib
    from brq_att_alt.inference import BestRQTranscriber

    extra = int(os.environ.get(LIMIT_ENV, "0"))
    if extra:
        resource.setrlimit(resource.RLIMIT_AS, ((proc_status_kib("VmSize") or 0) * 1024 + extra,
                                                resource.RLIM_INFINITY))
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    asr = BestRQTranscriber.from_folder(folder, chunk_seconds=0)  # one pass, also for mhsa
    load_s = time.perf_counter() - t0
    meter = CpuPeakMemory()  # the transcription's own peak: above the resident set after loading
    meter.set_baseline()
    meter.start()
    t0 = time.perf_counter()
    text = asr.transcribe_file(wav)
    compute_s = time.perf_counter() - t0
    Path(result).write_text(json.dumps({"compute_s": compute_s, "load_s": load_s, "chars": len(text),
                                        "rss_after_load_mib": meter.baseline_kib / 1024.0,
                                        "transcribe_peak_mib": meter.peak_mib() if meter.resettable else None}))
    return 0


def run_child(cmd, env):
    """Run ``cmd``; returns (exit status, wall seconds, peak RSS MiB of that child, stderr tail)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(ROOT))
    stderr = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_maxrss / 1024.0, stderr.strip().splitlines()[-3:]


def classify(code: int, stderr_tail) -> str:
    text = " ".join(stderr_tail).lower()
    if code == -9 or any(m in text for m in ("out of memory", "can't allocate", "cannot allocate", "memoryerror")):
        return "oom"
    return "error"


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def fit_line(x, y):
    """Least-squares y = slope x + intercept; returns (slope, intercept, largest |residual|)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(set(x)) < 2:
        return float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept), float(np.abs(y - (slope * x + intercept)).max())


def quadratic_notes(rows, machine) -> list:
    """MHSA: peak RSS = a m^2 + b m + c over the ``ok`` lengths m (minutes), its value at 10 min
    and the longest length whose fitted peak fits in the machine's total memory."""
    ok = [r for r in rows if r["status"] == "ok"]
    failed = sorted(r["minutes"] for r in rows if r["status"] != "ok")
    notes = [f"Longest length that ran: {max((r['minutes'] for r in ok), default=0):g} min"
             + (f"; first that failed: {failed[0]:g} min ({next(r['status'] for r in rows if r['minutes'] == failed[0])})"
                if failed else "") + "."]
    if len({r["minutes"] for r in ok}) < 3:
        return notes
    x = np.array([r["minutes"] for r in ok], float)
    y = np.array([r["peak_rss_mib"] for r in ok], float)
    coef = np.polyfit(x, y, 2)
    total_mib = float(str(machine.get("memory", "0 GiB")).split()[0]) * 1024
    roots = [r.real for r in np.roots([coef[0], coef[1], coef[2] - total_mib]) if abs(r.imag) < 1e-9 and r.real > 0]
    notes.append(f"Peak RSS fitted as {coef[0]:.1f} m^2 + {coef[1]:.1f} m + {coef[2]:.0f} MiB (m in minutes, "
                 f"largest residual {np.abs(np.polyval(coef, x) - y).max():.0f} MiB): {np.polyval(coef, 10) / 1024:.1f} "
                 f"GiB at 10 min (extrapolated); the machine's {total_mib / 1024:.1f} GiB would be reached at about "
                 f"{min(roots):.1f} min." if roots else "")
    return notes


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.worker:
        return worker(*a.worker, threads=a.threads)
    from brq_att_alt.benchmarking.report import machine_info, machine_label
    from brq_att_alt.benchmarking.sweep import worker_memory_limit
    from brq_att_alt.csv_files import write_csv

    torch_threads(a.threads)
    out = Path(a.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    folder = make_model_folder(work / f"model_{a.mixer}", a.mixer, a.seed)
    memory_limit = worker_memory_limit(a.memory_limit_gb if a.memory_limit_gb is not None
                                       else (None if a.mixer == "mhsa" else 0))
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads), LIMIT_ENV: str(memory_limit or 0)}
    machine = machine_info("cpu")
    print(f"# {machine_label(machine)}; load average {machine['load_average']}; model {folder}", flush=True)
    rows = []
    for minutes in sorted(a.minutes):
        wav = make_audio(work / f"noise_{minutes:g}min.wav", minutes, a.seed)
        for interface in a.interfaces:
            result = work / f"result_{interface}_{minutes:g}.json"
            result.unlink(missing_ok=True)
            if interface == "api":
                cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(a.threads),
                       "--worker", str(folder), str(wav), str(result)]
            else:
                cmd = [sys.executable, "-m", "brq_att_alt.transcribe", "--model", str(folder), str(wav)]
                if a.mixer == "mhsa":
                    cmd += ["--chunk-seconds", "0"]
            code, wall, peak, tail = run_child(cmd, env)
            row = dict(mixer=a.mixer, interface=interface, minutes=minutes, audio_s=minutes * 60, threads=a.threads,
                       frames=int(minutes * 60 * 25), peak_rss_mib=round(peak, 1))
            if code == 0:
                timing = json.loads(result.read_text()) if interface == "api" else {"compute_s": wall}
                row.update(status="ok", compute_s=round(timing["compute_s"], 2),
                           rtf=round(timing["compute_s"] / (minutes * 60), 4), load_s=timing.get("load_s"), error="",
                           rss_after_load_mib=timing.get("rss_after_load_mib"),
                           transcribe_peak_mib=timing.get("transcribe_peak_mib"))
            else:
                row.update(status=classify(code, tail), error=f"exit {code}: {' | '.join(tail)}"[:300])
            rows.append(row)
            print(f"[{a.mixer} {interface} {minutes:g} min] {row['status']}: "
                  f"{row.get('compute_s', '–')} s, RTF {row.get('rtf', '–')}, peak RSS {peak:.0f} MiB", flush=True)
    write_csv(out / "long_audio.csv", COLUMNS, rows)
    lines = [f"Machine: {machine_label(machine)}; load average at the start {machine['load_average']}, at the end "
             f"{machine_info('cpu')['load_average']}. Base {a.mixer} encoder (random weights) + CTC head, "
             f"{a.threads} torch thread(s), random 16 kHz audio, each run a fresh process"
             f"{'' if not memory_limit else f' (api runs: address space limited to {memory_limit / 2**30:.1f} GiB above their imports)'}.", "",
             "| interface | audio (min) | status | time (s) | real-time factor | peak RSS (MiB) | "
             "of which the transcription (MiB) |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        own = r.get("transcribe_peak_mib")
        lines.append(f"| {r['interface']} | {r['minutes']:g} | {r['status']} | {r.get('compute_s', '–')} | "
                     f"{r.get('rtf', '–')} | {r['peak_rss_mib']:.0f} | {'–' if own is None else f'{own:.0f}'} |")
    lines.append("")
    for interface, key, what in (("api", "peak_rss_mib", "peak RSS"), ("api", "transcribe_peak_mib",
                                 "the transcription's own peak"), ("cli", "peak_rss_mib", "peak RSS")):
        ok = [r for r in rows if r["interface"] == interface and r["status"] == "ok" and r.get(key) is not None]
        slope, intercept, resid = fit_line([r["minutes"] for r in ok], [r[key] for r in ok])
        if not np.isnan(slope) and a.mixer != "mhsa":  # MHSA: the quadratic fit below
            lines.append(f"{interface}, {what}: {slope:.1f} MiB per minute of audio x minutes + {intercept:.0f} MiB "
                         f"(least squares over {len(ok)} lengths; largest residual {resid:.0f} MiB).")
    if a.mixer == "mhsa":  # quadratic in length: fit, extrapolate to 10 min and to the machine's memory
        lines += quadratic_notes([r for r in rows if r["interface"] == "api"], machine)
    lines.append("")
    lines.append("Command: " + " ".join([Path(sys.executable).name, *sys.argv]))
    text = "\n".join(lines)
    (out / "long_audio.md").write_text(text + "\n", encoding="utf-8")
    machine.update(command=" ".join(sys.argv), options=vars(a))
    (out / "machine.txt").write_text("".join(f"{k}: {v}\n" for k, v in machine.items()), encoding="utf-8")
    print("\n" + text)
    return 0 if all(r["status"] == "ok" for r in rows) or a.mixer == "mhsa" else 1


if __name__ == "__main__":
    sys.exit(main())
