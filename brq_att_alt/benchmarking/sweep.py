"""The sweep: every (encoder, length), shortest first, each in this process or in a fresh one.

Order: encoder by encoder, lengths ascending; a failed configuration (oom / timeout /
error) gives one row with that status, and every longer length of the same encoder a
``skipped`` row (it would fail too, and an OOM can take minutes to reach).

Interleaved (``run_interleaved``): every encoder is built in this process, then timed in
turn, round after round, with a large matrix product (the machine's matmul rate) among
them; the order rotates by one place each round (``interleaved_order``), so that each
encoder takes each place once every n rounds. Another process that slows the machine for
a while then slows every encoder alike, and the ratios between them hold.

Isolation: a configuration can run in a child forked from a forkserver that has only
imported the libraries (cheap start-ups, a fresh address space for the CPU memory
meter), with a hard time limit per call (the child is killed) and optionally an
address-space limit (``RLIMIT_AS``), so that running out of memory raises in the child
instead of waking the OS's OOM killer. The children inherit this process's environment.
"""

import gc
import math
import multiprocessing
import re
import resource
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from .measure import (
    PREPARE, STATUS_OK, STATUS_SKIPPED, STATUS_TIMEOUT, TimeLimitExceeded, classify_exit_code, count_flops,
    failure_result, matmul_probe, proc_status_kib, run_measurement, set_threads, timed_call,
)
from .models import Encoder, num_frames

BUILD_TIMEOUT_S = 900.0  # model build and first call in a child, before the per-call limit applies


def run_in_process(task: str, spec: dict) -> dict:
    """Run a measurement here (``measure.run_measurement``), then free what it held."""
    result = run_measurement(task, spec)
    gc.collect()
    if torch.cuda.is_available() and torch.device(spec["device"]).type == "cuda":
        torch.cuda.empty_cache()
    return result


def _child_main(conn, task: str, spec: dict, memory_limit_bytes: Optional[int]):
    """Entry point of an isolated measurement process: progress and result go back through ``conn``."""
    gc.freeze()  # the libraries' objects: later collections (before each run) skip them
    try:
        if memory_limit_bytes:
            limit = (proc_status_kib("VmSize") or 0) * 1024 + int(memory_limit_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (OSError, ValueError) as exc:
        result = failure_result(exc)
    else:
        result = run_measurement(task, spec, progress=lambda msg: conn.send(("progress", msg)))
    conn.send(("result", result))
    conn.close()


_CONTEXT = None


def mp_context():
    """Forkserver (children forked from a process that has imported torch and the model:
    fresh address space, start-up in milliseconds); spawn where forkserver is missing.
    Started once per process; calling it early lets the forkserver import while the caller
    prepares."""
    global _CONTEXT
    if _CONTEXT is None:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            from multiprocessing import forkserver

            ctx.set_forkserver_preload(["brq_att_alt.benchmarking", "brq_att_alt.model"])
            forkserver.ensure_running()
        _CONTEXT = ctx
    return _CONTEXT


def run_isolated(task: str, spec: dict, memory_limit_bytes: Optional[int] = None, grace_s: float = 5.0) -> dict:
    """Run a measurement in a fresh process with a hard time limit per call.

    The child reports before each call; if the next report does not come within
    ``spec["time_limit"]`` + ``grace_s`` it is killed (``timeout``). A child that dies
    by SIGKILL without a result was killed by the OS, presumably for memory (``oom``).
    """
    ctx = mp_context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(child, task, spec, memory_limit_bytes), daemon=True)
    proc.start()
    child.close()
    limit = spec.get("time_limit")
    deadline = time.monotonic() + max(BUILD_TIMEOUT_S, limit or 0.0)
    result = None
    try:
        while result is None:
            if parent.poll(min(max(deadline - time.monotonic(), 0.0), 1.0)):
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    break
                if kind == "result":
                    result = payload
                elif limit is not None:
                    deadline = time.monotonic() + limit + grace_s
                else:
                    deadline = math.inf
            elif not proc.is_alive():
                break
            elif time.monotonic() > deadline:
                proc.kill()
                result = {"status": STATUS_TIMEOUT,
                          "error": f"killed: no forward finished within the time limit ({limit:g} s)"
                          if limit is not None else "killed: model build took too long"}
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()
    return result if result is not None else classify_exit_code(proc.exitcode)


def available_memory_bytes() -> Optional[int]:
    """MemAvailable, or the cgroup's remaining limit when that is smaller (Linux); else None."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            m = re.search(r"^MemAvailable:\s+(\d+) kB", f.read(), re.M)
        avail = int(m.group(1)) * 1024 if m else None
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            lim = Path(limit_file).read_text().strip()
            use = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if lim.isdigit() and int(lim) < 2**60:
            free = int(lim) - use
            avail = free if avail is None else min(avail, free)
    return avail


def worker_memory_limit(memory_limit_gb: Optional[float]) -> Optional[int]:
    """Address-space limit of an isolated CPU worker above its own size, in bytes: the given
    GiB (0: none), or by default 80% of the memory available now (None if unknown)."""
    if memory_limit_gb is not None:
        return int(memory_limit_gb * 2**30) if memory_limit_gb > 0 else None
    avail = available_memory_bytes()
    return int(0.8 * avail) if avail else None


def run_sweep(
    encoders: Sequence[Encoder],
    lengths: Sequence[float],
    settings: Dict[str, object],
    task: str = "inference",
    isolate: bool = False,
    memory_limit_bytes: Optional[int] = None,
    log: Callable[[str], None] = lambda msg: None,
) -> List[dict]:
    """Measure every (encoder, length), shortest first; return the per-run rows.

    ``settings``: the spec entries shared by every configuration (batch_size, runs, warmup,
    device, dtype, time_limit, seed, padding_mask, threads; see ``measure``). Every row
    carries the encoder's ``info`` columns, seconds, frames, batch_size, device, dtype,
    run, status and error; ``ok`` rows add time_s, peak_mem_mib and memory_method.
    """
    rows: List[dict] = []
    what = "step" if task == "train" else "forward"
    for enc in encoders:
        failed_at = None
        for seconds in sorted(lengths):
            spec = {"model": enc.config, "seconds": seconds, **settings}
            base = dict(enc.info, seconds=seconds, frames=num_frames(seconds), batch_size=spec["batch_size"],
                        device=spec["device"], dtype=spec["dtype"])
            tag = f"[{task} {enc.key} {seconds:g} s]"
            if failed_at is not None:
                rows.append({**base, "run": "", "status": STATUS_SKIPPED,
                             "error": f"{failed_at[0]} at {failed_at[1]:g} s"})
                log(f"{tag} skipped ({failed_at[0]} at a shorter length)")
                continue
            t0 = time.perf_counter()
            result = run_isolated(task, spec, memory_limit_bytes) if isolate else run_in_process(task, spec)
            wall = time.perf_counter() - t0
            if result["status"] != STATUS_OK:
                failed_at = (result["status"], seconds)
                rows.append({**base, "run": "", "status": result["status"], "error": result.get("error", "")})
                log(f"{tag} {result['status'].upper()}: {result.get('error', '')}")
                continue
            for i, (t, m) in enumerate(zip(result["times"], result["mems"]), start=1):
                rows.append({**base, "run": i, "status": STATUS_OK, "time_s": t, "peak_mem_mib": m,
                             "memory_method": result["memory_method"], "error": ""})
            log(f"{tag} {np.mean(result['times']):.4g} s/{what}, peak {np.mean(result['mems']):.4g} MiB "
                f"({len(result['times'])} runs, {wall:.1f} s wall)")
    return rows


# ----------------------------------------------------------------------------- interleaved
MATMUL_KEY = "matmul"


def interleaved_order(keys: Sequence[str], rounds: int) -> List[List[str]]:
    """The order of the calls, one list per round: ``keys`` rotated left by the round's number
    (round r starts with keys[r % n]), so that each key takes each place once every n rounds."""
    keys = list(keys)
    n = len(keys)
    return [keys[r % n:] + keys[: r % n] for r in range(rounds)] if n else [[] for _ in range(rounds)]


def run_interleaved(
    encoders: Sequence[Encoder],
    seconds: float,
    settings: Dict[str, object],
    task: str = "inference",
    rounds: int = 3,
    log: Callable[[str], None] = lambda msg: None,
) -> List[dict]:
    """Time every encoder's call (``measure.PREPARE[task]``) in turn, ``rounds`` times, in this
    process, with ``measure.matmul_probe`` as one more entry of the rotation.

    Before the rounds: ``settings["warmup"]`` (at least 1) untimed calls of each, the first
    one counting the FLOPs (``measure.count_flops``). An encoder that fails (build, call,
    or a call over ``time_limit``) is recorded with its status and left out of later rounds.
    Returns one row per timed call: mixer, label, seconds, frames, batch_size, device, dtype,
    round, place, status, time_s, flops, error (the probe's rows have mixer ``matmul``).
    """
    limit = settings.get("time_limit")
    set_threads(settings.get("threads"))
    calls, flops, failed, info = {}, {}, {}, {}
    for enc in encoders:
        spec = {"model": enc.config, "seconds": seconds, **settings}
        info[enc.key] = dict(enc.info, seconds=seconds, frames=num_frames(seconds), batch_size=spec["batch_size"],
                             device=spec["device"], dtype=spec["dtype"])
        try:
            calls[enc.key] = PREPARE[task](spec)
        except Exception as exc:  # noqa: BLE001 - recorded, the others go on
            failed[enc.key] = failure_result(exc)
    device = settings["device"]
    probe, probe_flops = matmul_probe(device)
    calls[MATMUL_KEY], flops[MATMUL_KEY] = probe, probe_flops
    info[MATMUL_KEY] = dict(mixer=MATMUL_KEY, label="fp32 matmul (n x n) @ (n x n), n = "
                            f"{round((probe_flops / 2) ** (1 / 3))}", seconds=seconds, frames="", batch_size="",
                            device=device, dtype="fp32")

    def run(key: str, what: str) -> Optional[float]:
        try:
            elapsed = timed_call(calls[key], device)
            if limit is not None and elapsed > limit:
                raise TimeLimitExceeded(f"{what} took {elapsed:.1f} s > time limit {limit:g} s")
            return elapsed
        except Exception as exc:  # noqa: BLE001
            failed[key] = failure_result(exc)
            calls.pop(key)
            gc.collect()
            log(f"[interleaved {task} {key} {seconds:g} s] {failed[key]['status'].upper()}: {failed[key]['error']}")
            return None

    for key in list(calls):
        if key == MATMUL_KEY:
            run(key, "warm-up call")
        else:
            try:
                flops[key] = count_flops(calls[key])
            except Exception as exc:  # noqa: BLE001
                failed[key] = failure_result(exc)
                calls.pop(key)
                continue
        for _ in range(max(int(settings.get("warmup", 1)), 1) - 1):
            if key in calls:
                run(key, "warm-up call")
    rows: List[dict] = []
    for r, order in enumerate(interleaved_order([k for k in info if k in calls], rounds), start=1):
        for place, key in enumerate(order, start=1):
            if key not in calls:
                continue
            elapsed = run(key, "call")
            if elapsed is not None:
                rows.append({**info[key], "round": r, "place": place, "status": STATUS_OK, "time_s": elapsed,
                             "flops": flops[key], "error": ""})
        log(f"[interleaved {task} {seconds:g} s] round {r}/{rounds}: " + ", ".join(
            f"{row['mixer']} {row['time_s']:.3g} s" for row in rows if row["round"] == r))
    for key, result in failed.items():
        rows.append({**info[key], "round": "", "place": "", "status": result["status"], "flops": flops.get(key, ""),
                     "error": result.get("error", "")})
    return rows
