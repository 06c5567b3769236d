"""`replica fleet create` and `replica fleet status`: the replicas of many people at once, on a Ray cluster.

    replica fleet create avatars.jsonl --out s3://bucket/replicas -c cluster
    replica fleet status s3://bucket/replicas

The work is `cluster.fleet`; this module is the command line around it, and the one piece the cluster layer
cannot hold: turning a row's dotted overrides into creation settings through the run config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Callable, List, Optional

import typer

from datasets.errors import ReplicaError
from launch.context import ConfigOpt, SetOpt, console, err_console, load, output, require

app = typer.Typer(help="Create the replicas of many people at once (each step a Ray task), and follow them.",
                  no_args_is_help=True)
SHOWN_FAILURES = 20
"""Failed avatars listed on the terminal (the report has all of them)."""


def settings_for(config: str, overrides: list[str], cfg) -> Callable[[dict], object]:
    """`config` + `overrides` (already loaded as `cfg`) → a function from an avatar's own dotted overrides to
    its creation settings. Only keys of the creation sections are accepted; a bad key or value raises
    ReplicaError naming it (that avatar fails as bad input)."""
    from cluster.create import CreateSettings
    from launch.config import load_config

    sections = [f.name for f in dataclasses.fields(CreateSettings)]
    base = CreateSettings.of(cfg)

    @functools.lru_cache(maxsize=64)  # fleets tend to share a few override sets
    def with_overrides(encoded: str) -> CreateSettings:
        extra = json.loads(encoded)
        for key in extra:
            if key.split(".")[0] not in sections:
                raise ReplicaError(f"config key {key}", f"not a creation setting (sections: {', '.join(sections)})")
        return CreateSettings.of(load_config(config, overrides + [f"{k}={json.dumps(v)}" for k, v in extra.items()]))

    return lambda extra: with_overrides(json.dumps(extra, sort_keys=True)) if extra else base


def _failure_line(row: dict) -> str:
    return (f"  [red]failed[/] line {row['line']} {row['id'] or '?'} ({row['step']}, {row['kind']}"
            + (f", {row['attempts']} attempts" if row["attempts"] > 1 else "") + f"): {row['reason']}")


def _print_failures(rows: list[dict]) -> None:
    for row in rows[:SHOWN_FAILURES]:
        console.print(_failure_line(row), highlight=False)
    if len(rows) > SHOWN_FAILURES:
        console.print(f"  … and {len(rows) - SHOWN_FAILURES} more (see the report)", highlight=False)


@app.command()
def create(avatars: str = typer.Argument(..., help='JSONL, one person a line: {"id": "ann", "video": URL, '
                                                   '"config": {"avatar.iterations": 500}} (config optional).'),
           out: Optional[str] = typer.Option(None, "--out", "-o", help="Where the bundles go, one folder per id "
                                             "(path or s3:// URL) (default: <storage.root>/replicas)."),
           until: Optional[str] = typer.Option(None, "--until", help="Stop every avatar after this step "
                                               "(default: fleet.until, else every step)."),
           max_in_flight: Optional[int] = typer.Option(None, "--max-in-flight", help="Avatars in progress at "
                                                       "once (default: fleet.max_in_flight)."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Create or resume a replica per JSONL line; finished steps are skipped, bad inputs reported, not retried."""
    from cluster.fleet import REPORT, run_fleet
    from datasets import storage
    from launch.config import save_config, with_options

    cfg = load(config, overrides)
    require(avatars)
    fleet = with_options(cfg.fleet, "fleet", until=until, max_in_flight=max_in_flight)
    prefix = output(cfg, out, "replicas")
    save_config(cfg.model_copy(update={"fleet": fleet}), prefix)
    console.print(f"fleet: {avatars} → {prefix} (steps: {', '.join(fleet.steps())}; "
                  f"{fleet.max_in_flight} avatars in flight)", highlight=False)
    report = run_fleet(avatars, prefix, settings_for(config, list(overrides or []), cfg), fleet,
                       runtime=cfg.runtime, console=err_console)
    _print_failures(report["failures"])
    console.print(f"fleet: {report['done']} done, {report['skipped']} skipped, {report['failed']} failed of "
                  f"{report['avatars']} avatars in {report['seconds']:.0f}s (steps run {report['steps_run']}, "
                  f"skipped {report['steps_skipped']}); report: {storage.join(prefix, REPORT)}", highlight=False)


@app.command()
def status(prefix: Optional[str] = typer.Argument(None, help="The fleet's --out (default: <storage.root>/replicas)."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Summarise a fleet from storage alone: bundles complete / partial / empty, the last report's failures."""
    from cluster.fleet import fleet_status

    cfg = load(config, overrides)
    prefix = output(cfg, prefix, "replicas")
    state = fleet_status(prefix)
    partial = ", ".join(f"after {step}: {n}" for step, n in state["partial_after"].items())
    console.print(f"{state['bundles']} bundles under {prefix}: {state['complete']} complete, {state['partial']} "
                  f"partial{f' ({partial})' if partial else ''}, {state['empty']} empty", highlight=False)
    report = state["report"]
    if report is None:
        console.print("no fleet report yet (none finished here: running, stopped, or never run)", highlight=False)
        return
    console.print(f"last fleet ({report['avatars']} avatars of {report['avatars_file']}, "
                  f"finished {report['finished']}): "
                  f"{report['done']} done, {report['skipped']} skipped, {report['failed']} failed; steps run "
                  f"{report['steps_run']}, skipped {report['steps_skipped']}", highlight=False)
    _print_failures(report["failures"])


def register(app_: typer.Typer) -> None:
    """Add the `fleet` group to the top-level app."""
    app_.add_typer(app, name="fleet")
