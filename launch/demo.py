"""`replica demo`: the whole system end to end on tiny data, as a new user's first run.

Each step prints what it did and where its outputs went; later stages append their steps here.
"""

from __future__ import annotations

import time

from rich.console import Console

from datasets import storage
from launch.config import ReplicaConfig, save_config


def _step(console: Console, title: str):
    console.rule(f"[bold]{title}")
    return time.perf_counter()


def run_demo(cfg: ReplicaConfig, out: str, console: Console) -> None:
    """Run every demo step, writing under `out`."""
    from launch.doctor import run_checks, verdict

    started = time.perf_counter()
    t = _step(console, "1. doctor")
    checks = run_checks(cfg)
    for check in checks:
        if check.status != "ok" or check.name in ("device", "renderer", "ray address", "storage"):
            console.print(f"  {check.status:<4} {check.name:<16} {check.detail}", highlight=False)
    console.print(f"  verdict: {verdict(checks)} ({time.perf_counter() - t:.1f}s)")

    t = _step(console, "2. storage round-trip")
    probe = storage.join(out, "storage-check.bin")
    payload = bytes(range(256)) * 4096
    storage.write_bytes(probe, payload)
    assert storage.read_bytes(probe) == payload, "storage round-trip returned different bytes"
    listed = storage.list_urls(out)
    storage.remove(probe)
    config_url = save_config(cfg, out)
    console.print(f"  wrote, listed ({len(listed)} objects), read back and removed {len(payload) / 2**20:.1f} MiB "
                  f"at {out}; config saved to {config_url} ({time.perf_counter() - t:.1f}s)")

    console.rule("[bold green]demo done")
    console.print(f"  total {time.perf_counter() - started:.1f}s; outputs under {out}")
