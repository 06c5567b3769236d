"""What every `replica` command shares: the console, the config options, loading the run config, and
where a command's inputs and outputs are (checked, and defaulted under `storage.root`, before work starts)."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console

from datasets import storage
from datasets.errors import ReplicaError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ConfigOpt = typer.Option("tiny", "--config", "-c", help="Preset name (tiny, default, cluster) or a YAML path/URL.")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config key: --set train.lr=3e-4 (repeatable).")


def load(config: str, overrides: Optional[List[str]]):
    """Load the run config and apply it to this process (storage endpoint)."""
    from cluster.runtime import configure_storage
    from launch.config import load_config

    cfg = load_config(config, overrides or [])
    configure_storage(cfg.storage)
    return cfg


def output(cfg, given: Optional[str], *parts: str) -> str:
    """Where a command writes: `given` when the user named it, else `<storage.root>/<parts…>`, so
    `--set storage.root=s3://bucket/prefix` moves every default output at once."""
    return given if given is not None else storage.join(cfg.storage.root, *parts)


def require(*urls: Optional[str]) -> None:
    """Raise ReplicaError for the first of the input files or folders `urls` (None: not given) that does
    not exist; commands call it before they start Ray or any heavy step."""
    for url in urls:
        if url is not None and not storage.exists(url):
            raise ReplicaError(url, "no such file or folder")
