"""The `replica` command line.

Command groups mirror the system's stages; each command loads one config (`--config`, `--set`),
does its work with progress on the driver, and ends with a summary. User errors print as one line
(`error: <input>: <reason>`) with exit status 1; `-v` shows tracebacks and more logging.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from datasets.errors import ReplicaError
from launch.context import ConfigOpt, SetOpt, console, err_console, load, output

app = typer.Typer(
    help="replica: train foundation models and build talking-avatar replicas on a Ray cluster.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
_state = {"verbose": 0}


@app.callback()
def _main(verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging; -vv for debug.")):
    from cluster.runtime import setup_logging

    _state["verbose"] = verbose
    setup_logging(verbose)


@app.command()
def doctor(config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Check versions, CUDA/gsplat, renderer backend, Ray address and storage reachability."""
    from launch.doctor import run_checks, verdict

    cfg = load(config, overrides)
    checks = run_checks(cfg)
    marks = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in checks:
        console.print(f"{marks[check.status]} {check.name:<18} {check.detail}", highlight=False)
    final = verdict(checks)
    summary = {"ok": "[green]ready[/]", "warn": "[yellow]ready, with limits (see warn lines)[/]",
               "fail": "[red]not ready (see FAIL lines)[/]"}[final]
    console.print(f"verdict: {summary}")
    if final == "fail":
        raise typer.Exit(1)


@app.command()
def demo(config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt,
         out: Optional[str] = typer.Option(None, help="Where the demo writes all its outputs (path or URL) "
                                                      "(default: <storage.root>/demo).")):
    """Run the whole system end to end on tiny data (CPU-friendly)."""
    from launch.demo import run_demo

    cfg = load(config, overrides)
    run_demo(cfg, output(cfg, out, "demo"), console)


def _register_groups() -> None:
    from launch import (avatar_cli, create_cli, data_cli, fleet_cli, jobs_cli, pretrain_cli, release_cli, render_cli,
                        serve_cli)

    create_cli.register(app)
    render_cli.register(app)
    app.add_typer(data_cli.app, name="data")
    app.add_typer(pretrain_cli.app, name="pretrain")
    app.add_typer(release_cli.app, name="release")
    app.add_typer(avatar_cli.app, name="avatar")
    app.command("submit", context_settings=jobs_cli.SUBMIT_CONTEXT)(jobs_cli.submit)
    app.add_typer(jobs_cli.app, name="jobs")
    serve_cli.register(app)
    fleet_cli.register(app)


_register_groups()


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry: run the app, printing ReplicaError as one line."""
    try:
        app(args=argv, prog_name="replica")
    except ReplicaError as err:
        if _state["verbose"]:
            err_console.print_exception()
        err_console.print(f"[red]error:[/] {err}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
