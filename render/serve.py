"""The Ray Serve application that renders any replica in storage on demand (`replica serve`, `serve deploy`).

Two deployments composed with a handle:

    Gateway  (FastAPI ingress, no CPU reserved)  HTTP API, web page, validation, auth, rate limit, job records
       │  handle.options(multiplexed_model_id=<replica id>)
    Renderer (autoscaled, CPU or fractional GPU)  `@serve.multiplexed` cache of the N most recently used
                                                  replicas; renders jobs to storage and streams fragments

The text → speech → face → video stages run inside the renderer as one pipeline (`render.pipeline`), so a
replica's models are loaded once per renderer and a request never crosses a process between stages.

`build_app(...)` is what `replica serve` runs; `app` is the builder `serve deploy cluster/configs/serve.yaml`
imports: its `args` are the `serve:` config section plus `storage_root`, `device`, `animator`.
"""

from __future__ import annotations

import os

from pydantic import SecretStr
from ray.serve import Application

from datasets import storage
from datasets.storage import S3Options
from render.serve_api import GatewayDeployment
from render.serve_config import ServeConfig
from render.serve_renderer import Renderer


def build_app(cfg: ServeConfig, *, storage_root: str, token: SecretStr | None = None, device: str = "cpu",
              animator: str | None = None, s3: S3Options | None = None) -> Application:
    """The Serve application for a `serve:` config section.

    Args:
        cfg: the section (port and host are Serve's HTTP options, applied by whoever starts Serve).
        storage_root: where `replicas` and `jobs` default to (`<root>/replicas`, `<root>/serve`).
        token: the bearer token every route but / and /healthz requires (None or empty: no auth).
        device: the renderers' torch device (cpu, cuda).
        animator: an animator URL used instead of each replica's own (None: the replica's).
        s3: the S3 options the deployments' processes use (default: this process's).
    """
    s3 = s3 if s3 is not None else storage.s3_options()
    replicas_url = cfg.replicas or storage.join(storage_root, "replicas")
    jobs_url = cfg.jobs or storage.join(storage_root, "serve")
    renderer = Renderer.options(
        ray_actor_options={"num_cpus": cfg.renderer_cpus, "num_gpus": cfg.renderer_gpus},
        # Validation and stats calls are answered while `renders_per_renderer` renders run.
        max_ongoing_requests=cfg.renders_per_renderer + 4,
        autoscaling_config={"min_replicas": cfg.min_renderers, "max_replicas": cfg.max_renderers,
                            "initial_replicas": max(cfg.min_renderers, 1),
                            "target_ongoing_requests": cfg.renders_per_renderer},
    ).bind(replicas_url, jobs_url, cache_size=cfg.cache_size, renders=cfg.renders_per_renderer, device=device,
           animator=animator, verify=cfg.verify, stale_after_s=cfg.stale_after_s, s3=s3)
    gateway = GatewayDeployment.options(ray_actor_options={"num_cpus": 0})
    return gateway.bind(renderer, cfg, replicas_url=replicas_url, jobs_url=jobs_url, token=token, s3=s3)


def app(args: dict) -> Application:
    """Builder for `serve deploy` (import path `render.serve:app`): `args` is the `serve:` config section plus
    `storage_root` (default ./runs), `device` (cpu) and `animator`. This is the process's entry point, so it
    reads the token from the environment variable the section names, as `replica serve` does."""
    args = dict(args or {})
    storage_root = args.pop("storage_root", "./runs")
    device = args.pop("device", "cpu")
    animator = args.pop("animator", None)
    cfg = ServeConfig.model_validate(args)
    token = os.environ.get(cfg.auth_token_env) or None
    return build_app(cfg, storage_root=storage_root, token=SecretStr(token) if token else None, device=device,
                     animator=animator)
