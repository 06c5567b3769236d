"""`replica pretrain …`: pre-train the foundation models with Ray Train + DeepSpeed, then evaluate."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load

app = typer.Typer(help="Pre-train the foundation models (audio encoder, animator) with Ray Train + DeepSpeed.",
                  no_args_is_help=True)

DataOpt = typer.Option(..., "--data", help="Training dataset (folder or manifest URL).")
EvalOpt = typer.Option(None, "--eval-data", help="Held-out dataset (unseen speakers/identities) for evaluation.")
OutOpt = typer.Option(..., "--out", help="Run folder (path or URL): checkpoints, model.pt, eval.json, wandb.")


def _run(kind: str, config: str, overrides, data: str, out: str, eval_data: Optional[str],
         audio_encoder: Optional[str] = None) -> None:
    from foundation.evaluate import evaluate_run
    from foundation.train import pretrain
    from launch.config import save_config

    cfg = load(config, overrides)
    save_config(cfg, out)
    console.print(f"pre-training [bold]{kind}[/] on {data} → {out} "
                  f"({cfg.train.num_workers} workers, {cfg.train.steps} steps, ZeRO-{cfg.train.zero_stage})")
    summary = pretrain(kind, cfg, data, out, eval_url=eval_data, init_from=audio_encoder)
    metrics = summary["final_metrics"]
    console.print(f"trained in {summary['seconds']:.0f}s; final loss {metrics.get('loss', float('nan')):.4f} "
                  f"at step {metrics.get('step')} (resumed from step {metrics.get('start_step', 0)})")
    if eval_data:
        report = evaluate_run(kind, out, eval_data, train_url=data)
        console.print(f"evaluation on {eval_data} (written to {out}/eval.json):")
        console.print(json.dumps(report, indent=2))


@app.command()
def audio(data: str = DataOpt, out: str = OutOpt, eval_data: Optional[str] = EvalOpt,
          config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Pre-train the audio encoder (speaker AAM-softmax + CPC content objectives)."""
    _run("audio", config, overrides, data, out, eval_data)


@app.command()
def animator(data: str = DataOpt, out: str = OutOpt,
             audio_encoder: str = typer.Option(..., "--audio-encoder", help="model.pt of a pre-trained audio encoder."),
             eval_data: Optional[str] = EvalOpt, config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Pre-train the animator (audio latents → expression, jaw and head pose) on a frozen audio encoder."""
    _run("animator", config, overrides, data, out, eval_data, audio_encoder=audio_encoder)
