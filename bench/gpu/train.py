"""Each foundation model's DeepSpeed training step in one process, without Ray: samples/s and memory.

This is what every Ray Train worker runs (`foundation.training.loop.train_loop_per_worker`) with Ray taken
out: the objective from `build_objective` and its model section, `deepspeed.initialize` with the run's
`deepspeed_config` (AdamW, warm-up + cosine, ZeRO stage, bf16, clipping), batches moved by the loop's
`to_device`, then forward, backward, step. The batches are a few made by the real `ShardLoader` (features
included) from a small toy dataset, kept on the device and cycled, so the numbers are the model step's and
not the loader's. The audio encoder runs first; the animator then starts from a fresh audio export, as
`replica pretrain animator --init-from` would. A failure in one model is recorded and the next one runs.

    python -m bench.gpu.train OUT.json [--config cluster] [--steps 40] [--warmup 10] [--precision bf16]
    python -m bench.gpu.train OUT.json --smoke     # the tiny preset's models, 2 steps: the CPU dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import torch

from datasets.loader import ShardLoader, dataset_speakers
from datasets.shards import write_dataset
from foundation.models import save_export
from foundation.training.deepspeed_config import deepspeed_config
from foundation.training.distributed import init_process_group, to_device
from foundation.training.objectives import AudioObjective, build_objective, model_section
from launch.config import load_config
from datasets.toy import toy_sample

BATCHES = 3
"""Distinct batches kept on the device and cycled."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSON file to write (rewritten after each model)")
    parser.add_argument("--config", default="cluster", help="preset whose model, loader and train sections are used")
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per model")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (kernel choice, allocator)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default=None, help="default: bf16 on CUDA, else fp32")
    parser.add_argument("--smoke", action="store_true", help="tiny preset, batch 4 of 1 s, 2 + 1 steps (CPU check)")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    precision = args.precision or ("bf16" if cuda else "fp32")
    if args.smoke:
        cfg = load_config("tiny", ["loader.batch_size=4", "loader.window_s=1.0"])
        args.steps, args.warmup = 2, 1
    else:
        cfg = load_config(args.config)
    cfg.loader = cfg.loader.model_copy(update={"num_workers": 0, "resampled": True})
    cfg.train = cfg.train.model_copy(update={"steps": args.steps + args.warmup,
                                             "warmup_steps": min(cfg.train.warmup_steps, args.warmup)})
    report = {"config": "tiny (smoke)" if args.smoke else args.config, "device": str(device), "precision": precision,
              "zero_stage": cfg.train.zero_stage, "batch_size": cfg.loader.batch_size, "window_s": cfg.loader.window_s,
              "timed_steps": args.steps, "warmup_steps": args.warmup,
              "note": "one process, no Ray; the loop of foundation.training.loop with cycled on-device batches; the "
                      "first model's setup_s includes DeepSpeed's JIT build of its optimizer op"}
    if cuda:
        report["gpu"] = torch.cuda.get_device_name(0)
    single_process_group()
    init_process_group("cuda" if cuda else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        write_dataset(data, (toy_sample(f"k{i:04d}", cfg.loader.window_s + 0.5, speaker=f"s{i % 8}", seed=i)
                             for i in range(2 * cfg.loader.batch_size)), max_count=cfg.loader.batch_size)
        audio_start = os.path.join(tmp, "audio.pt")
        save_export(AudioObjective(cfg.audio_encoder, cfg.features, dataset_speakers(data)).export(), audio_start)
        for kind, init_from in (("audio", None), ("animator", audio_start)):
            try:
                report[kind] = train_steps(kind, cfg, data, init_from, device, precision, args)
            except Exception as err:  # recorded, so the other model still runs
                traceback.print_exc()
                report[kind] = {"error": f"{type(err).__name__}: {err}".splitlines()[0][:500]}
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
            print(kind, json.dumps(report[kind]), flush=True)
    failed = [kind for kind in ("audio", "animator") if "error" in report[kind]]
    if failed:
        raise SystemExit(f"training step failed for {', '.join(failed)} (see above)")


def single_process_group() -> None:
    """The environment torch.distributed reads for a one-rank group (what Ray Train sets per worker);
    with it DeepSpeed skips its MPI discovery."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})


def train_steps(kind: str, cfg, data: str, init_from: str | None, device: torch.device, precision: str,
                args) -> dict:
    """Warm-up then timed steps of one objective; throughput, step times, memory and losses."""
    import deepspeed

    started = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    model = model_section(kind, data, features=cfg.features, audio_encoder=cfg.audio_encoder, animator=cfg.animator,
                          audio_loss=cfg.audio_loss, augment=cfg.augment)
    objective = build_objective(kind, model, init_from=init_from)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(model=objective, model_parameters=trainable,
                                           config=deepspeed_config(cfg.train, cfg.loader, precision, device.type))
    loader = iter(ShardLoader(data, cfg.loader, transform=objective.transform()))
    batches = [to_device(next(loader), device) for _ in range(BATCHES)]
    setup_s = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, step_s = [], []
    for step in range(args.warmup + args.steps):
        sync(device)
        tic = time.perf_counter()
        loss, _ = engine(batches[step % BATCHES])
        engine.backward(loss)
        engine.step()
        sync(device)
        losses.append(float(loss.detach()))
        if step >= args.warmup:
            step_s.append(time.perf_counter() - tic)
    batch = cfg.loader.batch_size
    result = {"parameters_M": round(sum(p.numel() for p in objective.parameters()) / 1e6, 2),
              "trainable_parameters_M": round(sum(p.numel() for p in trainable) / 1e6, 2),
              "setup_s": round(setup_s, 1), "samples_per_s": round(batch * len(step_s) / sum(step_s), 1),
              "step_ms_median": round(1000 * statistics.median(step_s), 1),
              "step_ms_best": round(1000 * min(step_s), 1),
              "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)]}
    if device.type == "cuda":
        result["peak_memory_allocated_MiB"] = round(torch.cuda.max_memory_allocated() / 2**20)
        result["peak_memory_reserved_MiB"] = round(torch.cuda.max_memory_reserved() / 2**20)
    else:
        result["peak_rss_MiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
