"""Where a measurement runs: in this process, or isolated in a fresh one.

An isolated configuration runs in a child forked from a forkserver that has only
imported the libraries (cheap start-ups), with a hard time limit per forward (the
child is killed) and optionally an address-space limit (``RLIMIT_AS``), so that
running out of memory raises in the child instead of waking the OS's OOM killer.
"""

import gc
import math
import multiprocessing
import os
import resource
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from .measure import _set_threads, measure_config, measure_train_step  # noqa: F401 (looked up through TASKS)
from .memory import _proc_status_kib
from .status import STATUS_OK, STATUS_TIMEOUT, _failure, classify_exit_code

TASKS = {"inference": "measure_config", "train": "measure_train_step"}


def _task_function(task: str) -> Callable:
    return globals()[TASKS[task]]  # looked up at call time (tests monkeypatch these)



def run_in_process(task: str, spec: dict) -> dict:
    """Run a measurement here; an exception becomes a failure result (status + error)."""
    threads = torch.get_num_threads()
    try:
        result = {"status": STATUS_OK, **_task_function(task)(spec)}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none crashes the sweep
        result = _failure(exc)
    _set_threads(threads)
    gc.collect()
    if torch.cuda.is_available() and torch.device(spec["device"]).type == "cuda":
        torch.cuda.empty_cache()
    return result


def _child_main(conn, task: str, spec: dict, memory_limit_bytes: Optional[int]):
    """Entry point of an isolated measurement process: results go back through ``conn``."""
    gc.freeze()  # the libraries' objects: later collections (before each run) skip them
    try:
        if memory_limit_bytes:
            size_kib = _proc_status_kib("VmSize") or 0
            limit = size_kib * 1024 + int(memory_limit_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        result = {"status": STATUS_OK, **_task_function(task)(spec, progress=lambda msg: conn.send(("progress", msg)))}
    except Exception as exc:  # noqa: BLE001
        result = _failure(exc)
    conn.send(("result", result))
    conn.close()


BUILD_TIMEOUT_S = 900.0
_CONTEXT = None


def _mp_context():
    """Forkserver (children forked from a process that has imported torch and the model:
    fresh address space, start-up in milliseconds); spawn where forkserver is missing."""
    global _CONTEXT
    if _CONTEXT is None:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            from multiprocessing import forkserver

            ctx.set_forkserver_preload(["brq_att_alt.benchmarking", "brq_att_alt.model"])
            # The forkserver does not receive this process's sys.path (CPython ignores it
            # before 3.13): start it with this package importable through PYTHONPATH.
            root = str(Path(__file__).resolve().parents[2])
            old = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = os.pathsep.join([root] + ([old] if old else []))
            try:
                forkserver.ensure_running()
            finally:
                if old is None:
                    del os.environ["PYTHONPATH"]
                else:
                    os.environ["PYTHONPATH"] = old
        _CONTEXT = ctx
    return _CONTEXT


def run_isolated(task: str, spec: dict, memory_limit_bytes: Optional[int] = None,
                 grace_s: float = 5.0) -> dict:
    """Run a measurement in a fresh process with a hard time limit per forward.

    The child reports before each forward; if the next report does not come within
    ``spec["time_limit"]`` + ``grace_s`` it is killed (``timeout``). A child that dies
    by SIGKILL without a result was killed by the OS, presumably for memory (``oom``).
    """
    ctx = _mp_context()
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
