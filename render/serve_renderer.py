"""The renderer deployment: renders jobs and streams with replicas it holds in a multiplexed LRU cache.

Each renderer replica holds at most `cache_size` replicas (`@serve.multiplexed`); a request names its replica
as the multiplexed model id, so Serve routes it to a renderer that already holds it when one does, and the
chosen renderer loads any other from storage, evicting the least recently used. Loads, hits and evictions are
counted (`stats`) and each job records whether its replica was already in memory.

Rendering runs in worker threads (the pipeline is synchronous torch code), at most `renders` at once per
renderer; the event loop stays free to answer validation and stats calls while renders run.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass, field

from ray import serve

from datasets import storage
from datasets.schema import FPS
from datasets.errors import ReplicaError
from datasets.storage import S3Options
from render.serve_jobs import JobStore, VideoResult

log = logging.getLogger("ray.serve")

PROGRESS_EVERY_S = 0.5
"""Least time between two progress writes of one job (each is a small storage write)."""


def one_line(err: BaseException) -> str:
    """An exception as the one line a client sees (ReplicaError as is, others with their type)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if isinstance(err, ReplicaError) else f"{type(err).__name__}: {text}".rstrip(": ")


@dataclass
class CacheStats:
    """What a renderer's replica cache did: requests, hits, loads from storage, evictions, and what it holds."""

    capacity: int
    requests: int = 0
    hits: int = 0
    loads: int = 0
    evictions: int = 0
    load_seconds: float = 0.0
    resident: list[str] = field(default_factory=list)
    """Replica ids held, least recently used first."""
    evicted: collections.deque = field(default_factory=lambda: collections.deque(maxlen=32))
    """The most recently evicted replica ids, oldest first."""

    def used(self, replica_id: str, hit: bool) -> None:
        self.requests += 1
        self.hits += hit
        if replica_id in self.resident:
            self.resident.remove(replica_id)
            self.resident.append(replica_id)

    def loaded(self, replica_id: str, seconds: float) -> None:
        self.loads += 1
        self.load_seconds += seconds
        self.resident.append(replica_id)

    def dropped(self, replica_id: str) -> None:
        self.evictions += 1
        self.evicted.append(replica_id)
        if replica_id in self.resident:
            self.resident.remove(replica_id)

    def as_dict(self) -> dict:
        return {"capacity": self.capacity, "requests": self.requests, "hits": self.hits, "loads": self.loads,
                "evictions": self.evictions, "hit_rate": round(self.hits / self.requests, 4) if self.requests else None,
                "load_seconds": round(self.load_seconds, 3), "resident": list(self.resident),
                "evicted": list(self.evicted)}


class HeldReplica:
    """One replica in a renderer's cache. Serve's multiplexer calls `__del__` when it evicts the replica,
    which is where the eviction is counted (once: the garbage collector may call it again later)."""

    def __init__(self, replica_id: str, replica, stats: CacheStats):
        self.replica_id = replica_id
        self.replica = replica
        self.stats = stats
        self.uses = 0
        self._dropped = False

    def __del__(self):
        if not self._dropped:
            self._dropped = True
            self.stats.dropped(self.replica_id)


@serve.deployment
class Renderer:
    """Renders videos of replicas named by the request's multiplexed model id."""

    def __init__(self, replicas_url: str, jobs_url: str, *, cache_size: int, renders: int, device: str,
                 animator: str | None, verify: bool, stale_after_s: float, s3: S3Options):
        storage.configure(s3)
        self.replicas_url = replicas_url
        self.jobs = JobStore(jobs_url, stale_after_s)
        self.device, self.animator, self.verify = device, animator, verify
        self.cache = CacheStats(capacity=cache_size)
        self.slots = asyncio.Semaphore(renders)
        self.name = serve.get_replica_context().replica_id.unique_id
        # Wired here rather than decorated on the class, so the cache size comes from the config (a plain
        # function: the multiplexer keeps its cache as an attribute of what it wraps, which a bound method refuses).
        async def load(replica_id: str) -> HeldReplica:
            return await self._load(replica_id)

        self._cached = serve.multiplexed(max_num_models_per_replica=cache_size)(load)

    async def _load(self, replica_id: str) -> HeldReplica:
        from render.pipeline import load_replica

        start = time.perf_counter()
        replica = await asyncio.to_thread(load_replica, storage.join(self.replicas_url, replica_id),
                                          animator=self.animator, device=self.device,
                                          verify_hashes=self.verify)
        self.cache.loaded(replica_id, time.perf_counter() - start)
        log.info("renderer %s loaded replica %s in %.2fs", self.name, replica_id, time.perf_counter() - start)
        return HeldReplica(replica_id, replica, self.cache)

    async def _use(self) -> tuple[HeldReplica, bool]:
        """The request's replica, loaded if needed; whether it was already held counts as a hit."""
        replica_id = serve.get_multiplexed_model_id()
        held = await self._cached(replica_id)
        hit = held.uses > 0
        held.uses += 1
        self.cache.used(replica_id, hit)
        return held, hit

    async def check(self, request: dict) -> dict | None:
        """Validate a request against its replica (loading it): None when valid, else {"status", "error"}."""
        from render.pipeline import RenderOptions, validate_request

        try:
            held = await self._cached(serve.get_multiplexed_model_id())
        except ReplicaError as err:
            return {"status": 500, "error": f"the replica cannot be loaded: {one_line(err)}"}
        try:
            validate_request(held.replica, request["text"], request["audio"],
                             RenderOptions.model_validate(request["options"]))
        except ReplicaError as err:
            return {"status": 400, "error": one_line(err)}
        return None

    def _progress_writer(self, job_id: str):
        """`on_progress(fraction, frames)` for the render thread: records progress at most every PROGRESS_EVERY_S."""
        last = [0.0]
        lock = threading.Lock()

        def write(progress: float, frames: int) -> None:
            now = time.monotonic()
            with lock:
                if now - last[0] < PROGRESS_EVERY_S and progress < 1.0:
                    return
                last[0] = now
            self.jobs.update(job_id, progress=min(max(float(progress), 0.0), 1.0), stage=f"rendering ({frames} frames)")

        return write

    async def render(self, job_id: str, request: dict) -> dict:
        """Render a job's video to storage, recording its state as it goes; returns the final job state.

        Failures of the job's own making (a ReplicaError, an error in a stage) end it failed with their reason;
        only this process dying leaves the job to the gateway (retry) or to staleness.
        """
        from render.pipeline import RenderOptions, render_to_url

        try:
            async with self.slots:
                await asyncio.to_thread(self.jobs.update, job_id, status="running", stage="loading the replica",
                                        renderer=self.name)
                held, hit = await self._use()
                await asyncio.to_thread(self.jobs.update, job_id, stage="rendering", cache_hit=hit)
                url = self.jobs.video_url(job_id)
                report = await asyncio.to_thread(
                    render_to_url, url, held.replica, text=request["text"], audio=request["audio"],
                    options=RenderOptions.model_validate(request["options"]),
                    on_progress=self._progress_writer(job_id))
                result = VideoResult(url=url, download=f"/v1/videos/{job_id}/mp4", bytes=storage.size(url),
                                     frames=report["frames"], seconds=report["video_s"],
                                     realtime_factor=report["realtime_factor"])
                job = await asyncio.to_thread(self.jobs.finish, job_id, result)
        except Exception as err:  # noqa: BLE001 - every failure of a job becomes its one-line error
            log.exception("job %s failed", job_id)
            job = await asyncio.to_thread(self.jobs.fail, job_id, one_line(err))
        return job.model_dump(mode="json")

    async def stream(self, job_id: str, request: dict):
        """Yield the job's mp4 as fragments as they render (bytes), then store the whole video and finish the job."""
        from render.pipeline import RenderOptions, stream_mp4

        pieces: list[bytes] = []
        try:
            async with self.slots:
                await asyncio.to_thread(self.jobs.update, job_id, status="running", stage="loading the replica",
                                        renderer=self.name)
                held, hit = await self._use()
                await asyncio.to_thread(self.jobs.update, job_id, stage="streaming", cache_hit=hit)
                progress = self._progress_writer(job_id)
                frames = [0]

                def seen(chunk) -> None:
                    frames[0] += len(chunk.frames)
                    progress(chunk.progress, frames[0])

                fragments = stream_mp4(held.replica, text=request["text"], audio=request["audio"],
                                       options=RenderOptions.model_validate(request["options"]), on_chunk=seen)
                while (piece := await asyncio.to_thread(next, fragments, None)) is not None:
                    pieces.append(piece)
                    yield piece
                url = self.jobs.video_url(job_id)
                video = b"".join(pieces)
                await asyncio.to_thread(storage.write_bytes, url, video)
                await asyncio.to_thread(self.jobs.finish, job_id, VideoResult(
                    url=url, download=f"/v1/videos/{job_id}/mp4", bytes=len(video), frames=frames[0],
                    seconds=frames[0] / FPS))
        except (asyncio.CancelledError, GeneratorExit):
            await asyncio.to_thread(self.jobs.fail, job_id, "the client left before the stream ended")
            raise
        except Exception as err:
            log.exception("stream %s failed", job_id)
            await asyncio.to_thread(self.jobs.fail, job_id, one_line(err))
            raise

    async def stats(self) -> dict:
        """This renderer's name and its replica cache counters."""
        import ray

        return {"renderer": self.name, "actor": ray.get_runtime_context().get_actor_name(),
                **self.cache.as_dict()}
