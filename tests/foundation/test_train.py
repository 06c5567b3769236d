"""Pre-training on Ray Train + DeepSpeed: 2 CPU workers, ZeRO-2, checkpoints, resume, worker kill."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from foundation.evaluate import evaluate_run
from foundation.objectives import load_audio_encoder, load_exported
from foundation.train import pretrain
from launch.config import load_config

TINY = ["train.num_workers=2", "train.zero_stage=2", "train.wandb.mode=offline", "loader.batch_size=4",
        "loader.window_s=1.6", "loader.num_workers=1", "train.lr=3e-3", "train.warmup_steps=3"]


def config(*overrides):
    return load_config("tiny", TINY + list(overrides))


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def mean_loss(rows, key="loss"):
    return sum(r[key] for r in rows) / len(rows)


@pytest.fixture(scope="module")
def audio_run(ray_cluster, speech_datasets, tmp_path_factory):
    train, heldout = speech_datasets
    run = tmp_path_factory.mktemp("audio") / "run"
    cfg = config("train.steps=24", "train.log_every=3", "train.checkpoint_every=12", "train.eval_every=12")
    summary = pretrain("audio", cfg, train, str(run), eval_url=heldout)
    return run, summary


def test_audio_pretraining_lowers_its_loss(audio_run):
    run, summary = audio_run
    rows = [r for r in history(run) if "loss" in r]
    assert rows[-1]["step"] == 24 and summary["final_metrics"]["step"] == 24
    assert mean_loss(rows[-3:]) < mean_loss(rows[:3])
    assert rows[-1]["peak_rss_mb"] > 0 and {"peak_rss_mb/rank0", "peak_rss_mb/rank1"} <= set(rows[-1])


def test_checkpoints_are_deepspeed_shards_per_rank_and_last_k_kept(audio_run):
    run, _ = audio_run
    checkpoints = sorted(p.name for p in (run / "train").glob("checkpoint_0*"))
    assert checkpoints == ["checkpoint_0000012", "checkpoint_0000024"]
    files = {p.name for p in (run / "train" / "checkpoint_0000024").rglob("*") if p.is_file()}
    assert {"trainer_state_rank0.json", "trainer_state_rank1.json"} <= files
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= files


def test_wandb_logs_offline_once_per_job(audio_run):
    run, _ = audio_run
    runs = list((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1


def test_export_reloads_without_deepspeed_or_ray(audio_run):
    run, _ = audio_run
    payload = load_exported(str(run / "model.pt"))
    assert payload["kind"] == "audio" and all("deepspeed" not in k for k in payload["state_dict"])
    encoder, features = load_audio_encoder(str(run / "model.pt"))
    import torch

    from foundation.audio.features import log_mel

    out = encoder(log_mel(torch.zeros(1, 16000), features))
    assert out.latent.shape == (1, 25, encoder.cfg.dim) and out.embedding.shape == (1, encoder.cfg.embed_dim)


def test_rerun_resumes_from_latest_checkpoint(audio_run, speech_datasets):
    run, _ = audio_run
    train, _ = speech_datasets
    cfg = config("train.steps=30", "train.log_every=3", "train.checkpoint_every=6", "train.eval_every=30")
    summary = pretrain("audio", cfg, train, str(run))
    assert summary["final_metrics"]["start_step"] == 24 and summary["final_metrics"]["step"] == 30
    steps = [r["step"] for r in history(run)]
    assert steps == sorted(steps) and steps[-1] == 30


def test_audio_evaluation_reports_eer_next_to_resemblyzer(audio_run, speech_datasets):
    run, _ = audio_run
    report = evaluate_run("audio", str(run), speech_datasets[1])
    assert 0.0 <= report["eer"] <= 1.0 and 0.0 <= report["eer_resemblyzer"] <= 0.5
    assert report["speakers"] == 3 and report["speakers_seen_in_training"] == 0
    assert json.loads((run / "eval.json").read_text()) == report


def _kill_a_worker_after(run: Path, checkpoint: str, killed: dict) -> None:
    """SIGKILL one training worker once Ray Train has registered `checkpoint` (not merely begun writing it)."""
    from ray.util.state import list_actors

    snapshot = run / "train" / "checkpoint_manager_snapshot.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (snapshot.exists() and checkpoint in snapshot.read_text()):
        time.sleep(0.2)
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    if workers:
        os.kill(workers[-1].pid, signal.SIGKILL)
        killed["pid"] = workers[-1].pid


@pytest.fixture(scope="module")
def killed_animator_run(audio_run, speech_datasets, tmp_path_factory):
    """An animator run on the audio run's encoder, one of whose two workers is SIGKILLed mid-run."""
    run, _ = audio_run
    train, heldout = speech_datasets
    animator_run = tmp_path_factory.mktemp("animator") / "run"
    killed: dict = {}
    watcher = threading.Thread(target=_kill_a_worker_after, args=(animator_run, "checkpoint_0000006", killed),
                               daemon=True)
    watcher.start()
    cfg = config("train.steps=18", "train.log_every=3", "train.checkpoint_every=6", "train.eval_every=18",
                 "train.max_failures=2", "train.lr=5e-3")
    summary = pretrain("animator", cfg, train, str(animator_run), eval_url=heldout, init_from=str(run / "model.pt"))
    watcher.join(timeout=5)
    return animator_run, summary, killed


def test_killed_worker_recovers_from_checkpoint(killed_animator_run):
    run, summary, killed = killed_animator_run
    assert killed, "no training worker was found to kill"
    assert summary["final_metrics"]["step"] == 18
    assert summary["final_metrics"]["start_step"] >= 6  # the restarted group resumed from a checkpoint, not zero
    rows = history(run)
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)  # one coherent history
    losses = [r for r in rows if "loss" in r]
    assert mean_loss(losses[-2:]) < mean_loss(losses[:2])


def test_animator_evaluation_reports_lve_next_to_both_baselines(killed_animator_run, speech_datasets):
    run, _, _ = killed_animator_run
    train, heldout = speech_datasets
    report = evaluate_run("animator", str(run), heldout, train_url=train)
    for model in ("animator", "mean_face", "energy_jaw"):
        assert 0 < report[f"lve_mm/{model}"] < 100 and 0 < report[f"mve_mm/{model}"] < report[f"lve_mm/{model}"]
    assert report["clips"] == 9 and report["train_clips"] == 24
