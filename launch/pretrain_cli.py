"""`replica pretrain …`: pre-train the foundation models with Ray Train + DeepSpeed, then evaluate."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load, output

app = typer.Typer(help="Pre-train the foundation models (audio encoder, animator) with Ray Train + DeepSpeed.",
                  no_args_is_help=True)

DataOpt = typer.Option(..., "--data", help="Training dataset (folder or manifest URL).")
EvalOpt = typer.Option(None, "--eval-data", help="Held-out dataset (unseen speakers/identities) for evaluation.")
OutOpt = typer.Option(None, "--out", help="Run folder (path or URL) for checkpoints, model.pt, eval.json, wandb; "
                                          "default <storage.root>/pretrain/<kind>.")


def _run(kind: str, config: str, overrides, data: str, out: Optional[str], eval_data: Optional[str],
         init_from: Optional[str] = None) -> None:
    from cluster.pretrain import check_inputs, pretrain
    from foundation.evaluation import evaluate_run
    from launch.config import save_config

    cfg = load(config, overrides)
    out = output(cfg, out, "pretrain", kind)
    check_inputs(kind, data, eval_data, init_from)
    save_config(cfg, out)
    console.print(f"pre-training [bold]{kind}[/] on {data} → {out} "
                  f"({cfg.train.num_workers} workers, {cfg.train.steps} steps, ZeRO-{cfg.train.zero_stage})")
    summary = pretrain(kind, cfg, data, out, eval_url=eval_data, init_from=init_from)
    metrics = summary["final_metrics"]
    console.print(f"trained in {summary['seconds']:.0f}s on {summary['device']} ({summary['precision']}, wandb "
                  f"{summary['wandb']}); final loss {metrics.get('loss', float('nan')):.4f} at step "
                  f"{metrics.get('step')} (resumed from step {metrics.get('start_step', 0)})")
    if eval_data:
        report = evaluate_run(kind, out, eval_data, train_url=data)
        console.print(f"evaluation on {eval_data} (written to {out}/eval.json):")
        console.print(json.dumps(report, indent=2))


@app.command()
def audio(data: str = DataOpt, out: Optional[str] = OutOpt, eval_data: Optional[str] = EvalOpt,
          config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Pre-train the audio encoder (speaker AAM-softmax + CPC content objectives)."""
    _run("audio", config, overrides, data, out, eval_data)


@app.command()
def animator(data: str = DataOpt, out: Optional[str] = OutOpt,
             init_from: str = typer.Option(..., "--init-from", "--audio-encoder",
                                           help="model.pt to start from: a pre-trained audio encoder (the animator "
                                                "starts fresh) or a pre-trained animator (both its models)."),
             eval_data: Optional[str] = EvalOpt, config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Pre-train the animator (audio latents → expression, jaw and head pose) on a pre-trained audio encoder,
    fine-tuning the encoder with it unless animator.finetune_encoder=false."""
    _run("animator", config, overrides, data, out, eval_data, init_from=init_from)
