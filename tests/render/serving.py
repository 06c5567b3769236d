"""Start the Serve application for a test module: replicas copied from the tiny one, a free loopback port."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx


def serve_replicas(tiny_replica: str, root: Path, names: tuple[str, ...], cfg, token=None) -> str:
    """Deploy the app serving copies of `tiny_replica` named `names` under `root/replicas`; returns its base URL.
    The caller shuts Serve down (`serve.shutdown()`)."""
    from ray import serve

    from launch.serve_cli import free_port
    from render.serve import build_app

    for name in names:
        shutil.copytree(tiny_replica, root / "replicas" / name)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(cfg, storage_root=str(root), token=token), name="replica", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base}/healthz did not answer within 60 s")
