"""What every `replica` command shares: the console, the config options, loading the run config."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ConfigOpt = typer.Option("tiny", "--config", "-c", help="Preset name (tiny, cluster) or a YAML path/URL.")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config key: --set train.lr=3e-4 (repeatable).")


def load(config: str, overrides: Optional[List[str]]):
    """Load the run config and apply it to this process (storage endpoint)."""
    from cluster.runtime import configure_storage
    from launch.config import load_config

    cfg = load_config(config, overrides or [])
    configure_storage(cfg.storage)
    return cfg
