"""The machine the numbers are measured on: its description, a label, its available memory."""

import os
import platform
import re
from pathlib import Path
from typing import Optional

import numpy as np
import torch


def machine_info(device="cpu") -> dict:
    """What the numbers were measured on: CPU model, cores, memory, versions, device name."""
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        if m:
            cpu = m.group(1).strip()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            mm = re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.M)
        mem = f"{int(mm.group(1)) / 2**20:.1f} GiB" if mm else None
    except OSError:
        pass
    info = {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": usable, "torch_threads": torch.get_num_threads(),
        "memory": mem, "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "device": str(device),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device_name": cpu if device.type == "cpu" else torch.cuda.get_device_name(device),
    }
    try:
        import speechbrain

        info["speechbrain"] = speechbrain.__version__
    except Exception:  # noqa: BLE001
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(cuda=torch.version.cuda, gpu_memory=f"{props.total_memory / 2**30:.1f} GiB",
                    cudnn=torch.backends.cudnn.version())
        try:
            import mamba_ssm  # noqa: F401

            info["mamba_cuda_kernels"] = "installed"
        except ImportError:
            info["mamba_cuda_kernels"] = "not installed (pure PyTorch scan)"
    return info


def machine_label(info: dict) -> str:
    if info["device"].startswith("cuda"):
        return f"{info['device_name']} ({info.get('gpu_memory', '')}), torch {info['torch']}"
    threads = info["torch_threads"]
    return (f"{info['cpu']} ({info['usable_cpus']} CPUs, {threads} torch thread{'s' if threads != 1 else ''}, "
            f"{info['memory']}), torch {info['torch']}")


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
