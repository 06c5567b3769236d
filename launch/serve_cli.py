"""`replica serve`: the Ray Serve application (`render.serve`) on a local or remote Ray, until Ctrl-C.

Also `serve_once`, which `replica demo` ends with: start the server briefly, request one video over HTTP,
save it, stop the server.
"""

from __future__ import annotations

import os
import socket
import time
from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load

READY_TIMEOUT_S = 120.0
"""How long to wait for the application to answer /healthz after deploying it."""


def start_server(cfg, *, port: Optional[int] = None, replicas: Optional[str] = None) -> tuple[str, Optional[str]]:
    """Start Ray (or connect), start Serve's HTTP proxy and deploy the application; returns (base URL, token).

    The token is read here, once, from the environment variable `serve.auth_token_env` names (None: no auth).
    """
    import httpx
    from pydantic import SecretStr
    from ray import serve

    from cluster.runtime import init_ray, resolve
    from launch.config import with_options
    from render.serve import build_app

    serve_cfg = with_options(cfg.serve, "serve", port=port, replicas=replicas)
    token = os.environ.get(serve_cfg.auth_token_env) or None
    init_ray(cfg.runtime)
    serve.start(http_options={"host": serve_cfg.host, "port": serve_cfg.port})
    app = build_app(serve_cfg, storage_root=cfg.storage.root, token=SecretStr(token) if token else None,
                    device=resolve(cfg.runtime).device)
    serve.run(app, name="replica", route_prefix="/")
    base = f"http://{'127.0.0.1' if serve_cfg.host == '0.0.0.0' else serve_cfg.host}:{serve_cfg.port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return base, token
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            from datasets.errors import ReplicaError

            raise ReplicaError(base, f"the server did not answer /healthz within {READY_TIMEOUT_S:.0f}s")
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_once(cfg, replica_url: str, text: str, out_url: str) -> dict:
    """Serve the replica at `replica_url` on a free local port, request `text` as one video over HTTP
    (POST /v1/videos?wait=true, then GET its mp4), save it to `out_url`, and stop Serve.

    Returns {"job", "url", "bytes", "frames", "seconds", "request_s", "port"}.
    """
    import httpx
    from ray import serve

    from datasets import storage
    from datasets.errors import ReplicaError

    replica_url = replica_url.rstrip("/")
    folder, replica_id = replica_url.rsplit("/", 1) if "/" in replica_url else (".", replica_url)
    port = free_port()
    base, token = start_server(cfg, port=port, replicas=folder)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        started = time.perf_counter()
        reply = httpx.post(f"{base}/v1/videos", params={"wait": "true"}, headers=headers, timeout=None,
                           json={"replica_id": replica_id, "text": text})
        if reply.status_code != 200:
            raise ReplicaError(f"POST {base}/v1/videos", f"{reply.status_code}: {reply.json().get('error')}")
        job = reply.json()
        video = httpx.get(f"{base}{job['result']['download']}", headers=headers, timeout=60)
        video.raise_for_status()
        storage.write_bytes(out_url, video.content)
        return {"job": job["id"], "url": out_url, "bytes": len(video.content), "frames": job["result"]["frames"],
                "seconds": job["result"]["seconds"], "request_s": round(time.perf_counter() - started, 2),
                "port": port}
    finally:
        serve.shutdown()


def serve_command(config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt,
                  port: Optional[int] = typer.Option(None, "--port", "-p", help="HTTP port (default: serve.port)."),
                  replicas: Optional[str] = typer.Option(None, help="Folder of replica bundles to serve "
                                                                    "(default: serve.replicas, else "
                                                                    "<storage.root>/replicas).")):
    """Serve replicas over HTTP with Ray Serve (API at /docs, web page at /) until Ctrl-C."""
    from ray import serve

    cfg = load(config, overrides)
    base, token = start_server(cfg, port=port, replicas=replicas)
    console.print(f"serving on {base} · web page {base}/ · API {base}/docs · "
                  f"{'bearer token required' if token else 'no auth (set $' + cfg.serve.auth_token_env + ')'} · "
                  f"Ctrl-C stops", highlight=False)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        serve.shutdown()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
