"""Describe the machine a benchmark ran on, for the JSON beside its numbers."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform


def describe_machine(packages: tuple[str, ...] = ()) -> dict:
    """CPU model, core count, memory, torch version/threads, the GPU if any, and the installed versions of
    `packages` (the libraries a benchmark's numbers depend on; None: not installed)."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "memory_GiB": mem_gb, "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": "cpu"}
    if torch.cuda.is_available():
        info["device"] = f"cuda: {torch.cuda.get_device_name(0)}"
    if packages:
        info["packages"] = {name: _installed(name) for name in packages}
    return info


def _installed(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None
