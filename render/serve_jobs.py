"""Job state for the Serve application, kept in storage rather than in any one process's memory.

    <jobs>/state/<id>.json   one small JSON per job: status, progress, attempts, error, the finished video's URL
    <jobs>/videos/<id>.mp4   the finished video (written atomically by the renderer)

The gateway writes a job when it accepts it and when a renderer dies under it; the renderer writes it as it
loads, renders and finishes. Whoever works on a job refreshes `updated`; a job still queued or running whose
state is older than `stale_after_s` is reported (and recorded) failed, so a process that died with nobody left
to say so still gives the client an answer instead of a job that runs forever.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from datasets import storage
from datasets.errors import ReplicaError

JOB_ID = re.compile(r"^[0-9a-f]{20}$")
ACTIVE = ("queued", "running")


class VideoResult(BaseModel):
    """A finished video."""

    url: str
    """Storage URL of the mp4."""
    download: str
    """HTTP path that returns the mp4's bytes."""
    bytes: int
    """Size of the mp4 in bytes."""
    frames: int | None = None
    """Video frames rendered."""
    seconds: float | None = None
    """Length of the video in seconds."""
    realtime_factor: float | None = None
    """Seconds of video rendered per wall-clock second (above 1 is faster than real time)."""


class Job(BaseModel):
    """One render request and where it stands."""

    id: str
    """The job id (20 hex digits)."""
    replica_id: str
    """The replica rendered."""
    kind: Literal["video", "stream"]
    """`video`: rendered to storage and fetched later; `stream`: streamed to the client as it rendered."""
    status: Literal["queued", "running", "done", "failed"] = "queued"
    """queued → running → done | failed (a retried job goes back to queued)."""
    stage: str = "accepted"
    """What the job is doing now, in words (loading the replica, rendering, writing the video)."""
    progress: float = Field(0.0, ge=0, le=1)
    """Fraction of the video rendered."""
    attempts: int = 1
    """Renders started for this job (more than one after a renderer died under it)."""
    error: str | None = None
    """Why the job failed (or why it was retried), in one line."""
    created: float
    """Unix time the job was accepted."""
    updated: float
    """Unix time its state last changed; a queued or running job that stops updating is failed as stale."""
    renderer: str | None = None
    """Serve replica of the renderer that last worked on the job."""
    cache_hit: bool | None = None
    """Whether that renderer already held the replica in memory."""
    result: VideoResult | None = None
    """The finished video (when status is done)."""


class JobStore:
    """Jobs as JSON objects under one storage folder."""

    def __init__(self, folder: str, stale_after_s: float):
        self.folder = folder
        self.stale_after_s = stale_after_s

    def state_url(self, job_id: str) -> str:
        return storage.join(self.folder, "state", f"{job_id}.json")

    def video_url(self, job_id: str) -> str:
        return storage.join(self.folder, "videos", f"{job_id}.mp4")

    def create(self, replica_id: str, kind: str) -> Job:
        """Record a newly accepted job (queued)."""
        now = time.time()
        job = Job(id=uuid.uuid4().hex[:20], replica_id=replica_id, kind=kind, created=now, updated=now)
        self.save(job)
        return job

    def save(self, job: Job) -> Job:
        job.updated = time.time()
        storage.write_text(self.state_url(job.id), job.model_dump_json(indent=1))
        return job

    def load(self, job_id: str) -> Job:
        """The job's stored state as written (ReplicaError when there is no such job)."""
        if not JOB_ID.match(job_id) or not storage.exists(self.state_url(job_id)):
            raise ReplicaError(f"job {job_id}", "no such job")
        return Job.model_validate_json(storage.read_text(self.state_url(job_id)))

    def get(self, job_id: str) -> Job:
        """The job's state, failing (and recording) an active job nobody has updated for `stale_after_s`."""
        job = self.load(job_id)
        idle = time.time() - job.updated
        if job.status in ACTIVE and idle > self.stale_after_s:
            job.error = (f"no progress for {idle:.0f}s while {job.stage}: the process working on it stopped "
                         f"(stale after {self.stale_after_s:g}s)")
            job.status, job.stage = "failed", "stale"
            self.save(job)
        return job

    def update(self, job_id: str, **changes) -> Job:
        """Read the job, apply `changes` (field=value) and write it back, refreshing `updated`."""
        job = self.load(job_id)
        for key, value in changes.items():
            setattr(job, key, value)
        return self.save(job)

    def finish(self, job_id: str, result: VideoResult, **changes) -> Job:
        return self.update(job_id, status="done", stage="done", progress=1.0, error=None, result=result, **changes)

    def fail(self, job_id: str, error: str, **changes) -> Job:
        return self.update(job_id, status="failed", stage="failed", error=error, **changes)

    def list_ids(self) -> list[str]:
        """Ids of every job in the store (for benchmarks and audits)."""
        folder = storage.join(self.folder, "state")
        if not storage.exists(folder):
            return []
        return sorted(url.rsplit("/", 1)[-1].removesuffix(".json") for url in storage.list_urls(folder))
