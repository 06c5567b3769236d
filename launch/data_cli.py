"""`replica data …`: build datasets (ingest videos, shipped speech corpora, the synthetic world)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build sharded datasets: ingest videos, shipped speech corpora, the synthetic world.",
                  no_args_is_help=True)
