"""`replica fleet` on the session's local Ray: ten tiny avatars (a two-second talking astronaut), one of them a
corrupt file and two whose first step fails transiently (a dropped storage connection, a lost worker process);
a re-run skips what is finished, and a driver killed mid-fleet is resumed with no finished step run twice.
The fleets stop after ingest (`fleet.until`), the only step a few seconds of CPU can afford here."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cluster.fleet import FleetConfig, FaultConfig, fleet_status, run_fleet
from datasets.media import write_mp4
from foundation.tts import synthesize
from launch.config import load_config
from launch.fleet_cli import settings_for
from tests.datasets.talking import astronaut_frames

OVERRIDES = ["creation.min_seconds=1", "creation.track_size=96", "creation.face_check_frames=2",
             "avatar.image_size=48"]
FRAMES = 50  # two seconds at 25 fps
GOOD = [f"p{i}" for i in range(8)]


@functools.cache
def person_video(folder: str) -> str:
    """A two-second video of a talking face (the astronaut, swaying, with flite speech)."""
    speech = synthesize("Hello, this is one of many avatars in the fleet.", "flite:slt").wav
    speech = np.pad(speech, (0, max(0, FRAMES * 640 - len(speech))))[:FRAMES * 640]
    video = f"{folder}/person.mp4"
    write_mp4(video, astronaut_frames(FRAMES, 96), fps=25.0, audio=speech, crf=18)
    return video


def write_avatars(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def creation_settings():
    return settings_for("tiny", OVERRIDES, load_config("tiny", OVERRIDES))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("fleet")
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))  # an mp4 header, then noise
    rows = [{"id": name, "video": person_video(str(folder))} for name in GOOD]
    rows.insert(3, {"id": "broken", "video": str(corrupt)})
    rows.append({"id": "tuned", "video": person_video(str(folder)), "config": {"creation.face_check_frames": 1}})
    return {"folder": folder, "avatars": write_avatars(folder / "avatars.jsonl", rows)}


@pytest.fixture(scope="module")
def fleet(ray_cluster, inputs) -> dict:
    cfg = FleetConfig(until="ingest", max_in_flight=4, retries=2, backoff_s=0.1,
                      faults={"p1": FaultConfig(kind="storage"), "p5": FaultConfig(kind="worker")})
    prefix = str(inputs["folder"] / "replicas")
    return {"prefix": prefix, "cfg": cfg,
            "report": run_fleet(inputs["avatars"], prefix, creation_settings(), cfg, show_progress=False)}


def test_a_fleet_finishes_every_good_avatar_and_reports_the_corrupt_one(fleet):
    report = fleet["report"]
    assert (report["avatars"], report["done"], report["skipped"], report["failed"]) == (10, 9, 0, 1)
    [failure] = report["failures"]
    assert failure["id"] == "broken" and failure["step"] == "ingest" and failure["kind"] == "input"
    assert failure["attempts"] == 1  # bad input: never retried
    assert "corrupt or truncated media file" in failure["reason"]
    assert report["per_step"]["ingest"]["run"] == 9 and report["steps_skipped"] == 0
    assert json.loads(Path(fleet["prefix"], "fleet-report.json").read_text()) == report


def test_transient_failures_are_retried(fleet):
    # p1's first attempt lost its storage connection, p5's worker process died: each ran again, once
    assert fleet["report"]["retries"] == {"ingest": 2}
    assert all(Path(fleet["prefix"], name, "steps", "ingest.json").exists() for name in ("p1", "p5"))


def test_each_fleet_step_reserves_one_cpu_and_computes_on_one_thread(fleet):
    records = [json.loads(Path(fleet["prefix"], name, "steps", "ingest.json").read_text()) for name in GOOD]
    assert {r["threads"] for r in records} == {1}  # so two avatars' steps run side by side on the 2 CPUs


def test_status_reads_the_fleet_from_storage(fleet):
    state = fleet_status(fleet["prefix"])
    assert (state["bundles"], state["complete"], state["partial"]) == (9, 0, 9)
    assert state["partial_after"] == {"ingest": 9}
    assert [row["id"] for row in state["report"]["failures"]] == ["broken"]


def test_a_rerun_skips_finished_avatars_and_launches_no_step(fleet, inputs):
    again = run_fleet(inputs["avatars"], fleet["prefix"], creation_settings(), fleet["cfg"], show_progress=False)
    assert (again["done"], again["skipped"], again["failed"]) == (0, 9, 1)
    assert (again["steps_run"], again["steps_skipped"], again["retries"]) == (0, 9, {})


def test_a_killed_fleet_resumes_without_running_a_finished_step_twice(ray_cluster, inputs, tmp_path):
    names = [f"k{i}" for i in range(6)]
    avatars = write_avatars(tmp_path / "avatars.jsonl",
                            [{"id": name, "video": person_video(str(inputs["folder"]))} for name in names])
    prefix = tmp_path / "replicas"
    records = [prefix / name / "steps" / "ingest.json" for name in names]
    address = ray_cluster.get_runtime_context().gcs_address
    command = [str(Path(sys.executable).parent / "replica"), "fleet", "create", avatars, "--out", str(prefix),
               "--until", "ingest", "--max-in-flight", "1", "--set", f"runtime.ray_address={address}"]
    command += [arg for override in OVERRIDES for arg in ("--set", override)]
    driver = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while sum(r.exists() for r in records) < 2:
        assert driver.poll() is None and time.monotonic() < deadline, "the fleet driver ended before it was killed"
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    # Ray ends the dead driver's tasks; wait until their workers are gone and no late record can appear
    while ray_cluster.available_resources().get("CPU", 0) < ray_cluster.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    finished = {r: r.stat().st_mtime_ns for r in records if r.exists()}
    assert 2 <= len(finished) < len(names)

    report = run_fleet(avatars, str(prefix), creation_settings(), FleetConfig(until="ingest"), show_progress=False)
    assert (report["steps_skipped"], report["steps_run"]) == (len(finished), len(names) - len(finished))
    assert {r: r.stat().st_mtime_ns for r in finished} == finished  # no finished step was run again
    assert all(r.exists() for r in records) and report["failed"] == 0
