"""`replica pretrain …`: pre-train the foundation models with Ray Train + DeepSpeed."""

from __future__ import annotations

import typer

app = typer.Typer(help="Pre-train the foundation models (audio encoder, animator) with Ray Train + DeepSpeed.",
                  no_args_is_help=True)
