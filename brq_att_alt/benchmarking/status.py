"""Status of a measured configuration, and how a failure is classified.

Out of memory (``torch.cuda.OutOfMemoryError``, ``MemoryError``, a RuntimeError saying
so, or a worker killed by SIGKILL, which the Linux OOM killer sends) is ``oom``; a
forward longer than the time limit is ``timeout``; any other exception is ``error``.
The longer lengths of a failed mixer are ``skipped``.
"""

from typing import Optional

import torch

STATUS_OK, STATUS_OOM, STATUS_TIMEOUT, STATUS_ERROR, STATUS_SKIPPED = "ok", "oom", "timeout", "error", "skipped"
FAILURES = (STATUS_OOM, STATUS_TIMEOUT, STATUS_ERROR)


class TimeLimitExceeded(Exception):
    """A forward (or training step) took longer than the configured time limit."""


OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
                "failed to allocate")


def classify_exception(exc: BaseException) -> str:
    """``oom``, ``timeout`` or ``error`` for an exception raised by a measurement."""
    if isinstance(exc, TimeLimitExceeded):
        return STATUS_TIMEOUT
    if isinstance(exc, MemoryError):
        return STATUS_OOM
    cuda_oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if cuda_oom is not None and isinstance(exc, cuda_oom):
        return STATUS_OOM
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MESSAGES):
        return STATUS_OOM
    return STATUS_ERROR


def classify_exit_code(code: Optional[int]) -> dict:
    """Failure result of a worker that ended without sending a result. SIGKILL is what the
    Linux OOM killer sends, so it counts as ``oom``; anything else is an ``error``."""
    import signal

    if code == -signal.SIGKILL:
        return {"status": STATUS_OOM, "error": "worker killed by SIGKILL (the OS's out-of-memory killer?)"}
    if code is not None and code < 0:
        return {"status": STATUS_ERROR, "error": f"worker killed by signal {-code}"}
    return {"status": STATUS_ERROR, "error": f"worker exited with code {code} without a result"}


def _failure(exc: BaseException) -> dict:
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return {"status": classify_exception(exc), "error": msg[:300]}
