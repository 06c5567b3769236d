"""`replica create`, `replica verify`, `replica ls`: replicas of people from their videos, as bundles on storage."""

from __future__ import annotations

from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load, output, require


def create(video: str = typer.Argument(..., help="A 1–2 minute video of one person talking (any container)."),
           out: Optional[str] = typer.Option(None, "--out", "-o", help="Bundle folder (path or s3:// URL) "
                                             "(default: <storage.root>/replicas/<video stem>)."),
           animator: Optional[str] = typer.Option(None, "--animator", help="The pre-trained foundation animator "
                                                  "(model.pt) to fine-tune (default: finetune.foundation, else the "
                                                  "default release shipped with replica)."),
           voice: Optional[str] = typer.Option(None, "--voice", help="Deploy this candidate voice whatever the "
                                               "ranking (e.g. flite:slt, flite:slt@fitted)."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Create a replica: ingest → track → voice → finetune → avatar, each a Ray task (fine-tuning a Ray Tune
    search); a re-run resumes at the first unfinished step."""
    from cluster.create import CreateSettings, create_replica
    from launch.config import save_config

    cfg = load(config, overrides)
    if animator:
        cfg.finetune.foundation = animator
    if voice:
        cfg.voice.override = voice
    require(video)
    stem = video.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    out = output(cfg, out, "replicas", stem)
    save_config(cfg, out)
    console.print(f"creating the replica of {video} → {out}", highlight=False)
    summary = create_replica(video, out, CreateSettings.of(cfg), runtime=cfg.runtime, console=console)
    total = sum(step["seconds"] for step in summary["steps"].values())
    console.print(f"replica: {out} ({total:.0f}s of steps; "
                  + ", ".join(f"{name} {step['status']}" for name, step in summary["steps"].items()) + ")",
                  highlight=False)


def verify(bundle: str = typer.Argument(..., help="A replica bundle folder (path or URL)."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Re-hash every artifact of a replica against its replica.json; exit 1 on any mismatch."""
    from datasets.errors import ReplicaError
    from personalize.bundle import verify as verify_bundle

    load(config, overrides)
    report = verify_bundle(bundle)
    for problem in report["problems"]:
        console.print(f"  [red]bad[/] {problem}", highlight=False)
    if not report["ok"]:
        raise ReplicaError(bundle, f"{len(report['problems'])} of {report['checked']} artifacts fail verification")
    console.print(f"ok: {report['checked']} artifacts match their sha256 ({bundle})", highlight=False)


def ls(prefix: Optional[str] = typer.Argument(None, help="Folder holding bundles (default: <storage.root>/replicas)."),
       config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """List the replicas under a folder with their state (complete, or partial and the last finished step) and the
    latest progress line of a step that is running or stopped."""
    from personalize.bundle import list_bundles

    cfg = load(config, overrides)
    prefix = output(cfg, prefix, "replicas")
    bundles = list_bundles(prefix)
    for row in bundles:
        step = f" (last finished step: {row['last_step']})" if row["state"] == "partial" else ""
        if row["progress"]:
            step += f" — last progress: {row['progress']}"
        console.print(f"{row['state']:<9} {row['url']}{step}", highlight=False)
    console.print(f"{len(bundles)} replicas under {prefix}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the commands to the top-level app."""
    app.command()(create)
    app.command()(verify)
    app.command()(ls)
