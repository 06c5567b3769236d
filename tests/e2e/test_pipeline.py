"""The whole system end to end at its smallest size, run as a user runs it: the `replica` console script.

`replica demo` runs once for the module (data → pre-train the audio encoder and the animator → a person
video → an avatar → an mp4 → `replica create` → the replica says a new sentence → served over HTTP), shrunk by `--set` overrides to a couple of minutes on 2 CPU cores; the tests
check what each stage left on storage. The `data` and `pretrain` commands are then run on their own
(pre-training only the animator, from the demo's audio encoder: the demo pre-trains both already), against the
session's running Ray through `RAY_ADDRESS`, as on a cluster (the demo shows a new user's local Ray starting).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from datasets.media import probe, read_video
from datasets.shards import read_manifest
from tests.replica_cli import run_replica

pytestmark = pytest.mark.slow

TINY = {
    "train.steps": 4, "train.num_workers": 1, "avatar.iterations": 30, "refine.iterations": 10,
    "runtime.step_cpus": 1,  # beside the main test session on 2 cores: two threads a create step would oversubscribe
    "synth.size": 64, "synth.supersample": 1, "synth.identities": 1, "synth.clips_per_identity": 1,
    "demo.train_identities": 4, "demo.train_clips_per_identity": 2,
    "demo.heldout_identities": 2, "demo.heldout_clips_per_identity": 2, "demo.person_seconds": 1,
    "creation.min_seconds": 1, "creation.min_face_px": 16, "tracking.rigid_iterations": 20,
    "tracking.iterations": 40, "tracking.photometric_iterations": 3, "tracking.photometric_frames": 2,
    "tracking.photometric_size": 32, "tracking.texture_size": 32,
    "voice.sentences": 2, "voice.candidates": '["flite:*"]', "finetune.trials": 1, "finetune.steps": "[10]",
    "finetune.report_every": 5,
}
"""Overrides that shrink every stage to seconds (the run config's ranges still apply). Pre-training takes 4 steps
(8 for the demo's animator) on one worker: the tests check that models load and evaluate, not how well they
learned, and this module runs beside the main session — tests/foundation/test_train.py trains on two workers."""


def settings(root: Path) -> list[str]:
    """`--set` arguments: storage under `root`, every stage shrunk."""
    return [arg for key, value in {"storage.root": root, **TINY}.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """One tiny `replica demo`, started in an empty folder with only storage.root (and sizes) set."""
    cwd = tmp_path_factory.mktemp("demo")
    result = run_replica("demo", *settings(cwd / "runs"), cwd=cwd, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"cwd": cwd, "out": cwd / "runs" / "demo", "log": result.stdout + result.stderr}


def test_demo_writes_only_under_storage_root(demo):
    assert [p.name for p in demo["cwd"].iterdir()] == ["runs"]
    assert (demo["out"] / "config.yaml").exists()


def test_demo_builds_datasets_of_the_sizes_asked_for(demo):
    sizes = {"clips": (1, 1), "train": (4, 2), "heldout": (2, 2)}
    for name, (identities, clips) in sizes.items():
        manifest = read_manifest(str(demo["out"] / "data" / name))
        assert manifest.num_samples == identities * clips, name
        assert len(manifest.info["speakers"]) == identities, name
    assert (demo["out"] / "data" / "contact_sheet.png").stat().st_size > 0


def test_demo_pretrains_an_audio_encoder_and_an_animator_that_load(demo):
    from foundation.models import load_animator, load_audio_encoder

    audio = load_audio_encoder(str(demo["out"] / "audio" / "model.pt"))
    assert audio.encoder.cfg.dim == 64 and len(audio.speakers) == 4
    animator = load_animator(str(demo["out"] / "animator" / "model.pt"))
    assert animator.animator.cfg.latent_dim == 64 and animator.encoder.cfg.dim == 64


def test_demo_evaluates_both_models_on_heldout_speakers(demo):
    audio = json.loads((demo["out"] / "audio" / "eval.json").read_text())
    assert audio["speakers"] == 2 and 0.0 <= audio["eer"] <= 1.0 and 0.0 <= audio["eer_resemblyzer"] <= 1.0
    animator = json.loads((demo["out"] / "animator" / "eval.json").read_text())
    assert animator["clips"] == 4
    for model in ("animator", "energy_jaw", "mean_face"):
        assert math.isfinite(animator[f"lve_mm/{model}"]) and animator[f"lve_mm/{model}"] > 0


def test_demo_trains_an_avatar_with_heldout_quality(demo):
    quality = json.loads((demo["out"] / "avatar" / "avatar.quality.json").read_text())
    assert quality["iterations"] == 30
    assert all(math.isfinite(numbers["psnr_db"]) for numbers in quality["heldout"].values())
    assert (demo["out"] / "avatar" / "side_by_side.png").stat().st_size > 0


def test_demo_renders_the_avatar_to_an_mp4_with_the_persons_voice(demo):
    video = str(demo["out"] / "video" / "avatar.mp4")
    person = str(demo["out"] / "person" / "person.mp4")
    info = probe(video)
    assert info.has_video and info.has_audio and info.fps == 25
    assert len(read_video(video)) == len(read_video(person))
    assert abs(info.duration_s - probe(person).duration_s) < 0.1


def test_demo_creates_a_replica_bundle_from_the_person_video_alone(demo):
    from personalize.bundle import read_manifest as read_bundle, verify

    bundle = str(demo["out"] / "replicas" / "person")
    assert verify(bundle)["ok"]
    metrics = read_bundle(bundle)["metrics"]
    assert metrics["track"]["landmark_px_mean"] < 3.0 and "splat" in metrics["avatar"]
    assert "the price of tracking" in demo["log"]


def test_demo_replica_says_a_new_sentence_and_is_served_over_http(demo):
    from datasets.media import read_audio

    said = str(demo["out"] / "render" / "new_sentence.mp4")
    frames, audio = read_video(said), read_audio(said)
    assert len(frames) > 25 and len(audio) == 640 * len(frames)
    assert "real-time factor" in demo["log"]
    assert json.loads((demo["out"] / "render" / "new_sentence.params.json").read_text())["frames"] == len(frames)
    served = str(demo["out"] / "serve" / "hello.mp4")
    assert probe(served).has_audio and len(read_video(served)) > 10
    assert "POST /v1/videos" in demo["log"]


def test_demo_log_has_progress_lines_not_redraws(demo):
    assert "\r" not in demo["log"]
    # at most a line per 5 s (tests/datasets/test_progress.py times that), never a line per step, however slow
    assert sum(line.startswith("avatar:") for line in demo["log"].splitlines()) < TINY["avatar.iterations"]


def ray_address(ray) -> str:
    return ray.get_runtime_context().gcs_address


def test_data_synth_command_builds_the_dataset_under_storage_root(ray_cluster, tmp_path):
    result = run_replica("data", "synth", "--no-video", "--identities", "2", "--clips-per-identity", "2",
                         *settings(tmp_path / "runs"), cwd=tmp_path, timeout=300, RAY_ADDRESS=ray_address(ray_cluster))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = read_manifest(str(tmp_path / "runs" / "data" / "synth"))
    assert manifest.num_samples == 4 and manifest.info["identities"] == 2


def test_pretrain_command_trains_and_evaluates_an_animator_on_a_pretrained_encoder(demo, ray_cluster, tmp_path):
    """The command's own options end to end, on one training worker like the demo here."""
    from foundation.models import load_animator

    run = tmp_path / "animator"
    result = run_replica("pretrain", "animator", "--data", str(demo["out"] / "data" / "train"),
                         "--eval-data", str(demo["out"] / "data" / "heldout"),
                         "--audio-encoder", str(demo["out"] / "audio" / "model.pt"), "--out", str(run),
                         *settings(tmp_path / "runs"), cwd=tmp_path, timeout=600,
                         RAY_ADDRESS=ray_address(ray_cluster))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert load_animator(str(run / "model.pt")).animator.cfg.latent_dim == 64
    report = json.loads((run / "eval.json").read_text())
    assert report["clips"] == 4 and math.isfinite(report["lve_mm/animator"])
