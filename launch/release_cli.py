"""`replica release …`: build the default foundation release (the `default` recipe) and show what is installed."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load, output

app = typer.Typer(help="The default foundation release: the audio encoder and animator that ship with replica.",
                  no_args_is_help=True)


@app.command()
def build(out: Optional[str] = typer.Option(None, "--out", help="Run folder for data, runs and the release "
                                                                "(default <storage.root>/release)."),
          install: bool = typer.Option(False, "--install", help="Copy the built release into the package "
                                                                "(foundation/release/), the no-argument default."),
          config: str = typer.Option("default", "--config", "-c", help="Recipe config (default: `default`)."),
          overrides: Optional[List[str]] = SetOpt):
    """Train the release: data → audio encoder → animator → evaluation → release/ (finished steps are kept)."""
    from launch.config import save_config
    from launch.release import build_release

    cfg = load(config, overrides)
    out = output(cfg, out, "release")
    save_config(cfg, out)
    info = build_release(cfg, out, console, install_it=install)
    console.print_json(json.dumps(info["eval"]))


@app.command()
def show(folder: Optional[str] = typer.Argument(None, help="A built release folder (default: the installed one).")):
    """Print a release's version, files and evaluation table."""
    from foundation.models import RELEASE_DIR, release_info

    info = release_info(folder or RELEASE_DIR)
    console.print(f"release {info['version']} (recipe {info['recipe']}, {info['created']}) in {folder or RELEASE_DIR}",
                  highlight=False)
    for name, meta in info["files"].items():
        console.print(f"  {name}: {meta['bytes'] / 2**20:.1f} MiB sha256 {meta['sha256'][:16]}…", highlight=False)
    for name, data in info.get("data", {}).items():  # the real speech it trained and was evaluated on
        clips = ", ".join(f"{corpus} {n}" for corpus, n in data.get("corpora", {}).items() if n)
        console.print(f"  {name}: {len(data.get('speakers', {}))} speakers, {len(data.get('sources', []))} "
                      f"recordings (clips: {clips})", highlight=False)
    console.print_json(json.dumps(info["eval"]))
