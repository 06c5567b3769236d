"""The runtime: the one place that reads the environment and decides where and how work runs.

- Ray: connect to `RAY_ADDRESS` (or an address given in config / on the command line), else start
  a local Ray sized to this machine, once per process.
- Device, precision and renderer: CPU → fp32 and the torch rasterizer (`render.raster_tiles`); CUDA → bf16 and
  gsplat. Everything downstream asks `resolve(cfg)` instead of probing for itself.
- Logging: configured once with rich, quiet by default, `-v` for more.
- Storage: the S3 endpoint from the config is applied here, and handed to Ray workers as env vars.
- Training workers: their environment (storage credentials, `DS_ACCELERATOR` on CPU, the wandb key) and
  the wandb mode (online when WANDB_API_KEY is set) are decided here and handed to the trainer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from datasets import storage
from datasets.config import Section, StorageConfig
from datasets.errors import ReplicaError

log = logging.getLogger("replica")


class RuntimeConfig(Section):
    """Where and how work runs."""

    ray_address: str | None = None
    """Ray cluster address (`ray://host:10001`, `auto`); None: $RAY_ADDRESS, else a local Ray."""
    num_cpus: int | None = Field(None, ge=1)
    """CPUs for a local Ray (None: all of this machine's)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Compute device; auto picks CUDA when present."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Training precision; auto is bf16 on CUDA, fp32 on CPU."""
    renderer: Literal["auto", "torch", "gsplat"] = "auto"
    """Gaussian rasterizer backend; auto is gsplat on CUDA, the torch reference on CPU."""
    step_cpus: int | None = Field(None, ge=1)
    """CPUs each step of `replica create` / `replica fleet` reserves from Ray, and the torch threads it computes
    with. None: `replica create` gives each step a whole node (its steps run one after another: the largest node's
    CPUs); a fleet one CPU per step (many people's steps side by side)."""


@dataclass(frozen=True)
class Resolved:
    """The concrete choices for this process."""

    device: str
    precision: str
    renderer: str
    ray_address: str | None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve(cfg: RuntimeConfig) -> Resolved:
    """Turn `auto` settings into concrete ones for this machine."""
    has_cuda = cuda_available()
    device = ("cuda" if has_cuda else "cpu") if cfg.device == "auto" else cfg.device
    if device == "cuda" and not has_cuda:
        raise ReplicaError("runtime.device=cuda", "no CUDA device is visible on this machine")
    precision = ("bf16" if device == "cuda" else "fp32") if cfg.precision == "auto" else cfg.precision
    renderer = ("gsplat" if device == "cuda" else "torch") if cfg.renderer == "auto" else cfg.renderer
    if renderer == "gsplat" and device != "cuda":
        raise ReplicaError("runtime.renderer=gsplat", "gsplat has no CPU path; use renderer=torch or a GPU")
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
    return Resolved(device=device, precision=precision, renderer=renderer, ray_address=address)


def configure_storage(cfg: StorageConfig) -> None:
    """Apply the storage section to this process (and, through env vars, to Ray workers)."""
    storage.configure(cfg.s3_options())
    if cfg.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = cfg.endpoint_url


def worker_env() -> dict[str, str]:
    """Environment variables Ray workers need to reach the same storage as the driver."""
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION", "AWS_REGION", "WANDB_API_KEY", "WANDB_MODE")
    env = {k: os.environ[k] for k in keys if os.environ.get(k)}
    opts = storage.s3_options()
    if opts.endpoint_url:
        env["AWS_ENDPOINT_URL"] = opts.endpoint_url
    return env


def training_worker_env(resolved: Resolved) -> dict[str, str]:
    """Environment of Ray Train workers: `worker_env()`, plus `DS_ACCELERATOR=cpu` on a CPU run, so DeepSpeed
    uses its CPU accelerator even on a machine where CUDA is visible (it would otherwise probe and pick CUDA)."""
    env = worker_env()
    if resolved.device == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
    return env


def wandb_mode(requested: str, environ: Mapping[str, str] = os.environ) -> str:
    """The wandb mode a run uses: `auto` is online when WANDB_API_KEY is set, else offline; others as asked."""
    if requested != "auto":
        return requested
    return "online" if environ.get("WANDB_API_KEY") else "offline"


def init_ray(cfg: RuntimeConfig | None = None, address: str | None = None):
    """Connect to a Ray cluster or start a local one (idempotent); returns the ray module.

    Ray is imported here, not at module import, so the models and the renderer stay usable on
    machines without Ray.
    """
    import ray

    if ray.is_initialized():
        return ray
    cfg = cfg or RuntimeConfig()
    address = address or cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
    runtime_env = {"env_vars": worker_env()}
    if address:
        log.info("connecting to Ray at %s", address)
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        except ConnectionError as err:
            raise ReplicaError(f"Ray address {address}", "no Ray cluster answers there") from err
    else:
        num_cpus = cfg.num_cpus or os.cpu_count() or 1
        # The dashboard serves Ray's state API, which Ray Train's controller uses to watch its workers.
        log.info("starting a local Ray with %d CPUs", num_cpus)
        ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1", runtime_env=runtime_env,
                 log_to_driver=log.isEnabledFor(logging.INFO), configure_logging=False)
    return ray


def largest_node_cpus(ray, gpus: float = 0) -> int:
    """CPUs of the biggest live node of the Ray cluster `ray` is connected to that also has `gpus` GPUs (a task
    runs on one node; a step that needs a GPU must fit a GPU node). 1 when no node qualifies yet (an autoscaler
    may add one)."""
    return max([int(node["Resources"].get("CPU", 0)) for node in ray.nodes()
                if node.get("Alive") and node["Resources"].get("GPU", 0) >= gpus] + [1])


def use_reserved_cpus() -> int:
    """At the start of a Ray task's body: compute with as many torch threads as the task reserved CPUs (one when
    it reserved none: such a task drives others, e.g. a Tune search, and must not compete with them); returns it.

    Ray starts its workers with OMP_NUM_THREADS=1 and reuses them across tasks, so torch otherwise keeps one
    thread, or whatever the worker's earlier task had (a 2-CPU avatar step ran on one thread, 1.5× slower). Without
    Ray running (a step called in-process) torch's count is left as it is.
    """
    import torch

    try:
        import ray
    except ImportError:  # the models and renderer run without Ray
        return torch.get_num_threads()
    if ray.is_initialized():
        torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0))))
    return torch.get_num_threads()


def setup_logging(verbose: int = 0) -> None:
    """Configure logging once: warnings only by default, info with -v, debug with -vv."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        root.addHandler(RichHandler(show_path=verbose > 1, rich_tracebacks=verbose > 0, markup=False))
    root.setLevel(logging.WARNING)
    logging.getLogger("replica").setLevel(level)
    for noisy in ("botocore", "s3fs", "fsspec", "urllib3", "aiobotocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.INFO)
