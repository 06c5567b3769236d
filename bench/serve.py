"""Load test of the Serve application on loopback → bench/results/serve.json.

A local Serve (bearer token on, rate limit off) serves more copies of the tiny test replica than one renderer's
cache holds; for each concurrency level, that many clients loop for a fixed time, alternating a streamed video
(POST /v1/videos:stream) and a job (POST /v1/videos?wait=true), each on a replica drawn at random. Reported per
level: throughput (videos/s and rendered video seconds per wall second), latency p50/p95/p99, time to the first
streamed fragment, errors by kind, the renderer's cache hit rate; and at the end, from the job store, that
nothing was lost: every accepted job is done or failed with a reason.

    .venv/bin/python bench/serve.py [--clients 1 4 16] [--duration 20] [--replicas 4] [--cache 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# Run as a script, this folder would come first on sys.path; the repository root must instead.
sys.path = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bench.machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
TOKEN = "bench-token"
SCRIPTS = ["Hello there.", "Thanks for calling. How can I help?", "The weather is fine today."]
DRAIN_S = 180.0
"""How long requests still in flight when a level's time is up may take to finish."""


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {"p50": round(statistics.median(ordered), 3), "p95": pick(0.95), "p99": pick(0.99)}


async def one_request(client: httpx.AsyncClient, base: str, replica: str, stream: bool, text: str) -> dict:
    """One video; returns {"ok", "kind", "latency_s", "first_s", "video_s", "job"}."""
    started = time.perf_counter()
    body = {"replica_id": replica, "text": text}
    try:
        if stream:
            async with client.stream("POST", f"{base}/v1/videos:stream", json=body) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    return {"ok": False, "kind": f"http {reply.status_code}", "job": None}
                first, size = None, 0
                async for piece in reply.aiter_raw():
                    first = first if first is not None else time.perf_counter() - started
                    size += len(piece)
                job_id = reply.headers["x-job-id"]
            job = (await client.get(f"{base}/v1/videos/{job_id}")).json()
            return {"ok": job["status"] == "done", "kind": "ok" if job["status"] == "done" else "stream failed",
                    "latency_s": time.perf_counter() - started, "first_s": first, "job": job_id,
                    "video_s": (job.get("result") or {}).get("seconds") or 0.0}
        reply = await client.post(f"{base}/v1/videos", params={"wait": "true"}, json=body)
        if reply.status_code != 200:
            return {"ok": False, "kind": f"http {reply.status_code}", "job": None}
        job = reply.json()
        return {"ok": True, "kind": "ok", "latency_s": time.perf_counter() - started, "job": job["id"],
                "video_s": job["result"]["seconds"]}
    except httpx.HTTPError as err:
        return {"ok": False, "kind": type(err).__name__, "job": None}


async def level(base: str, clients: int, duration_s: float, replicas: list[str], seed: int) -> dict:
    """`clients` concurrent loops for `duration_s`; the level's numbers."""
    rng = random.Random(seed)
    results: list[dict] = []
    stop = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=clients + 4)

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=DRAIN_S, limits=limits) as client:
        async def loop(index: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                results.append(await one_request(client, base, rng.choice(replicas), stream=(index + n) % 2 == 0,
                                                 text=rng.choice(SCRIPTS)))
                n += 1

        before = (await client.get(f"{base}/v1/stats")).json()["renderer"]
        started = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(clients)))
        wall = time.perf_counter() - started
        after = (await client.get(f"{base}/v1/stats")).json()["renderer"]
    used = {key: after[key] - before[key] for key in ("requests", "hits", "loads", "evictions")}
    ok = [r for r in results if r["ok"]]
    return {"clients": clients, "wall_s": round(wall, 2), "requests": len(results), "ok": len(ok),
            "errors": dict(Counter(r["kind"] for r in results if not r["ok"])),
            "videos_per_s": round(len(ok) / wall, 3),
            "video_s_per_wall_s": round(sum(r["video_s"] for r in ok) / wall, 3),
            "latency_s": percentiles([r["latency_s"] for r in ok]),
            "first_fragment_s": percentiles([r["first_s"] for r in ok if r.get("first_s") is not None]),
            "renderer_cache": {**used,
                               "hit_rate": round(used["hits"] / used["requests"], 3) if used["requests"] else None,
                               "load_s_mean": round((after["load_seconds"] - before["load_seconds"]) / used["loads"], 3)
                               if used["loads"] else None},
            "jobs": [r["job"] for r in results if r["job"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    parser.add_argument("--replicas", type=int, default=4, help="replicas in storage")
    parser.add_argument("--cache", type=int, default=2, help="replicas one renderer holds")
    parser.add_argument("--renderers", type=int, default=1)
    args = parser.parse_args()

    from ray import serve

    from cluster.runtime import RuntimeConfig, init_ray, resolve
    from launch.serve_cli import free_port
    from render.serve import build_app
    from render.serve_config import ServeConfig
    from render.serve_jobs import JobStore
    from tests.render.replica import cached_replica

    tiny = cached_replica(CACHE)
    root = Path(tempfile.mkdtemp(prefix="replica-serve-bench-"))
    names = [f"replica-{i:02d}" for i in range(args.replicas)]
    for name in names:
        shutil.copytree(tiny, root / "replicas" / name)
    cfg = ServeConfig(cache_size=args.cache, min_renderers=args.renderers, max_renderers=args.renderers,
                      renderer_cpus=1, rate_limit_per_minute=0, stale_after_s=DRAIN_S)
    device = resolve(RuntimeConfig()).device
    init_ray(RuntimeConfig())
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(cfg, storage_root=str(root), token=SecretStr(TOKEN), device=device), name="replica")
    base = f"http://127.0.0.1:{port}"
    try:
        levels = []
        for i, clients in enumerate(args.clients):
            row = asyncio.run(level(base, clients, args.duration, names, seed=i))
            print(json.dumps({k: v for k, v in row.items() if k != "jobs"}), flush=True)
            levels.append(row)
        store = JobStore(str(root / "serve"), DRAIN_S)
        states = Counter()
        unexplained = 0
        for job_id in store.list_ids():
            job = store.get(job_id)
            states[job.status] += 1
            unexplained += job.status == "failed" and not job.error
        seen = {job for row in levels for job in row.pop("jobs")}
        lost = {"jobs_in_store": sum(states.values()), "by_status": dict(states),
                "still_active": states["queued"] + states["running"], "failed_without_reason": unexplained,
                "seen_by_clients_not_in_store": len(seen - set(store.list_ids()))}
    finally:
        serve.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    report = {"bench": "serve", "what": __doc__.splitlines()[0], "device": device, "replicas": args.replicas,
              "cache_size": args.cache, "renderers": args.renderers, "duration_s_per_level": args.duration,
              "levels": levels, "nothing_lost": lost,
              "machine": describe_machine(("ray", "fastapi", "uvicorn", "torch"))}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(lost), f"→ {RESULTS}", flush=True)


if __name__ == "__main__":
    main()
