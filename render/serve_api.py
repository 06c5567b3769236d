"""The gateway deployment: the HTTP API (FastAPI, OpenAPI at /docs), the web page, and the jobs it hands to
the renderers.

    GET  /                      the web page (pick a replica, type a script, watch it stream, download it)
    GET  /healthz               liveness (the only route open without the token besides the page)
    GET  /v1/replicas           bundles in storage with their state
    POST /v1/videos             {replica_id, text | audio (base64), options} → a job (202); ?wait=true answers when
                                it ends (200, or 500 with the job's error)
    GET  /v1/videos/{id}        the job's status, progress and, when done, its video's URL
    GET  /v1/videos/{id}/mp4    the finished video's bytes
    POST /v1/videos:stream      the mp4 in fragments as they render (header X-Job-Id names its job)
    GET  /v1/stats              the gateway's counters and one renderer's replica cache

Every error is JSON `{"error": "<one line>"}`: 400/404/409/413/415/422 for requests that cannot be served,
401 and 429 from the guard, 500 with the job's error when a stage fails. Validation that needs the replica
(languages, voices) runs on a renderer before the job is accepted, so a bad request never becomes a job.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from pathlib import Path
from typing import Any

import pydantic
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, SecretStr
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import ReplicaUnavailableError

from datasets import storage
from datasets.errors import ReplicaError
from datasets.storage import S3Options
from personalize.bundle import bundle_state, list_bundles
from render.serve_access import BodyLimit, Guard, RateLimiter
from render.serve_config import ServeConfig
from render.serve_jobs import Job, JobStore
from render.serve_renderer import one_line

log = logging.getLogger("ray.serve")

PAGE = Path(__file__).parent / "static" / "index.html"
REPLICA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RENDERER_DIED = (RayActorError, ReplicaUnavailableError)
"""What a handle call raises when the renderer replica working on it dies: the job is retried or failed."""


class VideoRequest(BaseModel):
    """A script (or recorded speech) for one replica to say."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    replica_id: str
    """The bundle's folder name under the served replicas folder (see GET /v1/replicas)."""
    text: str | None = None
    """The script to speak (give text or audio, not both)."""
    audio: str | None = None
    """Speech to lip-sync instead of a script: an audio file (wav, mp3, ogg, …) in base64."""
    options: dict[str, Any] = {}
    """Render options (language, voice, chunk_frames, refine, …); unknown keys are rejected."""


class Gateway:
    """The ingress: validates and admits requests, records jobs, and hands them to the renderers."""

    def __init__(self, renderer, cfg: ServeConfig, *, replicas_url: str, jobs_url: str, token: SecretStr | None,
                 s3: S3Options):
        storage.configure(s3)
        self.renderer = renderer
        self.cfg = cfg
        self.replicas_url = replicas_url
        self.jobs = JobStore(jobs_url, cfg.stale_after_s)
        self.token = token
        self.running: dict[str, asyncio.Task] = {}
        self.counts = {"accepted": 0, "streams": 0, "rejected": 0, "retried": 0}

    def __serve_build_asgi_app__(self):
        return build_api(self)

    def _reject(self, status: int, error: str) -> HTTPException:
        self.counts["rejected"] += 1
        return HTTPException(status_code=status, detail=error)

    async def prepare(self, body: VideoRequest) -> dict:
        """The request as the renderer takes it ({"text", "audio" float32 16 kHz, "options"}), or an HTTP error."""
        from render.pipeline import RenderOptions, decode_audio_bytes

        if not REPLICA_ID.match(body.replica_id):
            raise self._reject(400, f"replica_id {body.replica_id!r}: not a replica name (letters, digits, . _ -)")
        state = await asyncio.to_thread(bundle_state, storage.join(self.replicas_url, body.replica_id))
        if state["state"] == "empty":
            raise self._reject(404, f"replica {body.replica_id}: no such replica (GET /v1/replicas lists them)")
        if state["state"] == "partial":
            raise self._reject(409, f"replica {body.replica_id}: not complete (last finished step: "
                                    f"{state['last_step']})")
        if (body.text is None) == (body.audio is None):
            raise self._reject(422, "give either text or audio (base64), not both and not neither")
        audio = None
        if body.text is not None:
            if not body.text.strip():
                raise self._reject(400, "text: empty")
            if len(body.text) > self.cfg.max_chars:
                raise self._reject(400, f"text: {len(body.text)} characters, over the limit of {self.cfg.max_chars}")
        else:
            try:
                data = base64.b64decode(body.audio, validate=True)
            except (binascii.Error, ValueError) as err:
                raise self._reject(400, f"audio: not valid base64 ({err})") from None
            try:
                audio = await asyncio.to_thread(decode_audio_bytes, data)
            except ReplicaError as err:
                raise self._reject(415, f"audio: unsupported or unreadable ({one_line(err)})") from None
        try:
            options = RenderOptions.model_validate(body.options)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            key = ".".join(["options", *map(str, first["loc"])])
            reason = "unknown option" if first["type"] == "extra_forbidden" else first["msg"]
            raise self._reject(422, f"{key}: {reason}") from None
        request = {"text": body.text, "audio": audio, "options": options.model_dump(mode="json")}
        problem = await self.renderer.options(multiplexed_model_id=body.replica_id).check.remote(request)
        if problem is not None:
            raise self._reject(problem["status"], f"replica {body.replica_id}: {problem['error']}")
        return request

    async def submit(self, replica_id: str, request: dict) -> Job:
        job = await asyncio.to_thread(self.jobs.create, replica_id, "video")
        self.counts["accepted"] += 1
        self.running[job.id] = asyncio.create_task(self._run(job.id, replica_id, request))
        self.running[job.id].add_done_callback(lambda _: self.running.pop(job.id, None))
        return job

    async def _run(self, job_id: str, replica_id: str, request: dict) -> None:
        """Hand a job to a renderer; a renderer that dies under it gets it re-run `job_retries` times, then failed."""
        tries = self.cfg.job_retries + 1
        for attempt in range(1, tries + 1):
            response = self.renderer.options(multiplexed_model_id=replica_id).render.remote(job_id, request)
            try:
                await self._await_keeping_queued_jobs_fresh(job_id, response)
                return
            except RENDERER_DIED as err:
                why = f"the renderer died while working on it (attempt {attempt} of {tries}: {type(err).__name__})"
                log.warning("job %s: %s", job_id, why)
                if attempt == tries:
                    await asyncio.to_thread(self.jobs.fail, job_id, why)
                    return
                self.counts["retried"] += 1
                await asyncio.to_thread(self.jobs.update, job_id, status="queued", stage="retrying", progress=0.0,
                                        attempts=attempt + 1, error=why)
            except Exception as err:  # noqa: BLE001 - the job must end with a reason, whatever went wrong
                log.exception("job %s", job_id)
                await asyncio.to_thread(self.jobs.fail, job_id, one_line(err))
                return

    async def _await_keeping_queued_jobs_fresh(self, job_id: str, response) -> None:
        # A job waiting for a free renderer has nobody else to refresh it; the gateway does while it holds it,
        # so only a job whose gateway or renderer died goes stale.
        pending = asyncio.ensure_future(response)
        while not (await asyncio.wait({pending}, timeout=self.cfg.stale_after_s / 4))[0]:
            job = await asyncio.to_thread(self.jobs.load, job_id)
            if job.status == "queued":
                await asyncio.to_thread(self.jobs.save, job)
        pending.result()

    async def job(self, job_id: str) -> Job:
        try:
            return await asyncio.to_thread(self.jobs.get, job_id)
        except ReplicaError as err:
            raise HTTPException(404, one_line(err)) from None

    async def stream(self, replica_id: str, request: dict) -> StreamingResponse:
        job = await asyncio.to_thread(self.jobs.create, replica_id, "stream")
        self.counts["streams"] += 1
        fragments = self.renderer.options(multiplexed_model_id=replica_id, stream=True).stream.remote(job.id, request)
        try:
            first = await fragments.__anext__()
        except StopAsyncIteration:
            await asyncio.to_thread(self.jobs.fail, job.id, "the renderer produced no video")
            raise HTTPException(500, f"job {job.id}: the renderer produced no video") from None
        except Exception as err:  # noqa: BLE001 - a failed stage answers 500 with the job's error
            if isinstance(err, RENDERER_DIED):
                await asyncio.to_thread(self.jobs.fail, job.id, f"the renderer died ({type(err).__name__})")
            failed = await asyncio.to_thread(self.jobs.get, job.id)
            raise HTTPException(500, f"job {job.id}: {failed.error or one_line(err)}") from None

        async def body():
            yield first
            try:
                async for piece in fragments:
                    yield piece
            except RENDERER_DIED as err:
                # The response has begun; dropping the connection tells the client the video is incomplete.
                await asyncio.to_thread(self.jobs.fail, job.id, f"the renderer died mid-stream ({type(err).__name__})")
                raise

        return StreamingResponse(body(), media_type="video/mp4", headers={"X-Job-Id": job.id})


def build_api(gateway: Gateway) -> FastAPI:
    """The FastAPI application of one gateway replica (its routes call `gateway`)."""
    cfg = gateway.cfg
    api = FastAPI(title="replica", version="1", summary="Render any replica in storage: text or speech → mp4.")

    @api.exception_handler(HTTPException)
    async def _http_error(_: Request, err: HTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError):
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        reason = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        gateway.counts["rejected"] += 1
        return JSONResponse({"error": f"{loc}: {reason}"}, status_code=422)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE.read_text())

    @api.get("/healthz")
    async def healthz() -> dict:
        """Liveness: answers without the token."""
        return {"ok": True}

    @api.get("/v1/replicas")
    async def replicas() -> list[dict]:
        """Replica bundles in storage: id, state (complete | partial), the last finished creation step and the
        latest progress line of the step after it (running or stopped; null when none)."""
        bundles = await asyncio.to_thread(list_bundles, gateway.replicas_url) \
            if await asyncio.to_thread(storage.exists, gateway.replicas_url) else []
        return [{"id": b["url"].rstrip("/").rsplit("/", 1)[-1], "state": b["state"], "last_step": b["last_step"],
                 "progress": b["progress"]} for b in bundles]

    @api.post("/v1/videos", status_code=202)
    async def create_video(body: VideoRequest, wait: bool = False) -> Job:
        """Accept a render job; poll GET /v1/videos/{id}. With wait=true, answer when it ends."""
        request = await gateway.prepare(body)
        job = await gateway.submit(body.replica_id, request)
        if not wait:
            return job
        task = gateway.running.get(job.id)
        if task is not None:
            await asyncio.shield(task)
        job = await gateway.job(job.id)
        if job.status == "failed":
            raise HTTPException(500, f"job {job.id}: {job.error}")
        return JSONResponse(job.model_dump(mode="json"), status_code=200)

    @api.get("/v1/videos/{job_id}")
    async def get_video(job_id: str) -> Job:
        """A job's status and progress; when done, its video's storage URL and download path."""
        return await gateway.job(job_id)

    @api.get("/v1/videos/{job_id}/mp4", response_class=Response, responses={200: {"content": {"video/mp4": {}}}})
    async def download(job_id: str):
        """The finished video (409 while the job runs, 500 with its error when it failed)."""
        job = await gateway.job(job_id)
        if job.status == "failed":
            raise HTTPException(500, f"job {job_id}: {job.error}")
        if job.status != "done":
            raise HTTPException(409, f"job {job_id}: not finished ({job.status}, {job.progress:.0%})")
        return Response(await asyncio.to_thread(storage.read_bytes, job.result.url), media_type="video/mp4")

    @api.post("/v1/videos:stream", response_class=StreamingResponse,
              responses={200: {"content": {"video/mp4": {}}, "description": "fragmented mp4, as it renders"}})
    async def stream_video(body: VideoRequest):
        """The video as fragmented mp4, sent as it renders (each prefix ending at a fragment plays)."""
        request = await gateway.prepare(body)
        return await gateway.stream(body.replica_id, request)

    @api.get("/v1/stats")
    async def stats() -> dict:
        """The gateway's job counters and the replica cache of the renderer that answers."""
        renderer = await gateway.renderer.stats.remote()
        return {"gateway": {**gateway.counts, "in_flight": len(gateway.running)}, "renderer": renderer}

    # The last middleware added runs first: the guard turns callers away before any body is read.
    api.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    limiter = RateLimiter(cfg.rate_limit_per_minute, cfg.rate_burst)
    api.add_middleware(Guard, token=gateway.token, limiter=limiter, open_paths=frozenset({"/", "/healthz"}))
    return api


GatewayDeployment = serve.deployment(serve.ingress()(Gateway), name="Gateway")
