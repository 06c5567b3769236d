"""`replica avatar …`: train and render a Gaussian-splat avatar of one person."""

from __future__ import annotations

import typer

app = typer.Typer(help="Train and render a Gaussian-splat avatar bound to the head model.", no_args_is_help=True)
