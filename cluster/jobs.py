"""Ray Jobs submission: run a command on a Ray cluster with this working directory, follow it, stop it.

`replica submit -- replica pretrain audio …` is this module over Ray's Jobs SDK
(`ray.job_submission.JobSubmissionClient`): the working directory goes to the cluster as the job's runtime env
(`working_dir`, less `EXCLUDES`), the command runs there as the job's entrypoint (the driver), with its
copy of the code first on PYTHONPATH, and the `replica` console script of the cluster's image on PATH.

    client = jobs_client("http://head:8265")
    job_id = submit_job(client, ["replica", "pretrain", "audio", "--data", "s3://…"], num_gpus=1)
    info = follow_job(client, job_id, sys.stdout.write)     # streams its logs until it ends
    raise_if_failed(client, info)

Every error the cluster or the network gives becomes a one-line `ReplicaError` naming the address or the job:
no cluster answering, authentication refused, an unknown job id, a job that failed (with its last log line).
Addresses are the Ray dashboard's HTTP address (`http://<head>:8265`), which serves the Jobs API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from datasets.errors import ReplicaError

if TYPE_CHECKING:
    from ray.job_submission import JobDetails, JobSubmissionClient

log = logging.getLogger("replica")

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
"""The dashboard of a Ray head on this machine (`ray start --head`)."""
EXCLUDES = ["runs/", ".venv/", "venv/", ".cache/", ".git/", "__pycache__/", "*.pyc", "*.egg-info/", ".whl/",
            "*.whl", ".pytest_cache/", "wandb/", "build/"]
"""What never travels with a job (gitignore syntax): run outputs, environments, caches, VCS data, build output,
wheels. Ray also honours the working directory's .gitignore files."""
CONNECT_TIMEOUT_S = 10.0
"""How long to wait for the dashboard's TCP port before saying no cluster answers (the SDK itself never times
out on a host that drops packets)."""


def jobs_client(address: str) -> JobSubmissionClient:
    """A Jobs SDK client for the cluster whose dashboard is at `address` (http:// or https://), checked to answer.

    Raises ReplicaError when the address is not an HTTP URL, nothing answers there, or it refuses authentication.
    """
    _check_reachable(address)
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    from ray.job_submission import JobSubmissionClient

    _quiet_ray_logging()
    # Ray's own drivers send the cluster token (RAY_AUTH_TOKEN, ~/.ray/auth_token) when one exists; its Jobs SDK
    # only does when RAY_AUTH_MODE=token is set. Do what `ray.init(address=…)` does, so a head started with
    # token authentication (the default once a token exists) accepts our requests.
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    # The SDK lets RAY_ADDRESS / RAY_API_SERVER_ADDRESS override the address it is given; the caller has already
    # chosen (--address, else RAY_ADDRESS), so hide them while the client resolves its address.
    with _talking_to(address), _environment_without("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        return JobSubmissionClient(address)


def runtime_env(working_dir: str | Path) -> dict:
    """The job's Ray runtime env: `working_dir` (uploaded by the SDK, unpacked as the job's cwd) less EXCLUDES."""
    path = Path(working_dir).resolve()
    if not path.is_dir():
        raise ReplicaError(working_dir, "no such folder to package as the job's working directory")
    return {"working_dir": str(path), "excludes": list(EXCLUDES)}


def submit_job(client: JobSubmissionClient, command: Sequence[str], working_dir: str | Path = ".",
               num_gpus: float | None = None, num_cpus: float | None = None) -> str:
    """Submit `command` (argv, quoted for the job's shell) to run with `working_dir` as its code; returns the
    submission id (`raysubmit_…`).

    `num_gpus` / `num_cpus` reserve resources for the entrypoint itself (the job's driver process); work the
    driver puts on the cluster (Ray Train workers, tasks) asks for its own. None: Ray's default (no GPU, no CPU).
    """
    env = runtime_env(working_dir)
    with _talking_to(client.get_address()):
        try:
            return client.submit_job(entrypoint=shlex.join(command), runtime_env=env,
                                     entrypoint_num_gpus=num_gpus, entrypoint_num_cpus=num_cpus)
        except ValueError as err:  # the SDK's packaging: working dir too large, unreadable files
            raise ReplicaError(working_dir, _first_line(err)) from err


def job_info(client: JobSubmissionClient, job_id: str) -> JobDetails:
    """The job's details (status, message, times, entrypoint, exit code)."""
    with _talking_to(client.get_address(), job_id):
        return client.get_job_info(job_id)


def list_jobs(client: JobSubmissionClient) -> list[JobDetails]:
    """Every job the cluster knows, oldest first."""
    with _talking_to(client.get_address()):
        return sorted(client.list_jobs(), key=lambda job: job.start_time or 0)


def job_logs(client: JobSubmissionClient, job_id: str) -> str:
    """Everything the job's driver has written so far (stdout and stderr)."""
    with _talking_to(client.get_address(), job_id):
        return client.get_job_logs(job_id)


def follow_job(client: JobSubmissionClient, job_id: str, write: Callable[[str], object]) -> JobDetails:
    """Pass the job's logs to `write` as they come, from the start, until it ends; returns its final details."""
    import aiohttp

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    job_info(client, job_id)  # an unknown id fails here, in one line, not inside the websocket
    with _talking_to(client.get_address(), job_id):
        try:
            asyncio.run(tail())
        except aiohttp.ClientError as err:
            raise ReplicaError(f"job {job_id}", f"lost the connection to {client.get_address()} while following "
                                                f"it ({_first_line(err)})") from err
    return wait_for_job(client, job_id)


def wait_for_job(client: JobSubmissionClient, job_id: str, timeout_s: float | None = None,
                 poll_s: float = 0.5) -> JobDetails:
    """Poll until the job is in a terminal state (or `timeout_s` passes); returns its latest details."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        info = job_info(client, job_id)
        if info.status.is_terminal() or (deadline is not None and time.monotonic() > deadline):
            return info
        time.sleep(poll_s)


def stop_job(client: JobSubmissionClient, job_id: str, timeout_s: float = 30.0) -> tuple[bool, JobDetails]:
    """Ask the cluster to stop the job (SIGTERM, then SIGKILL after Ray's grace period) and wait up to `timeout_s`
    until it has ended; returns whether it had not ended yet, and its latest details.

    A job still PENDING for want of resources stays so: Ray delivers the stop once it starts, and fails a job that
    never starts after RAY_JOB_START_TIMEOUT_SECONDS (15 minutes by default)."""
    with _talking_to(client.get_address(), job_id):
        was_running = client.stop_job(job_id)
    return was_running, wait_for_job(client, job_id, timeout_s=timeout_s)


def raise_if_failed(client: JobSubmissionClient, info: JobDetails) -> None:
    """Raise ReplicaError for a job that failed or was stopped: its status, exit code and last log line."""
    status = info.status.value
    if status not in ("FAILED", "STOPPED"):
        return
    job_id = info.submission_id or info.job_id
    exit_code = "" if info.driver_exit_code is None else f" (exit code {info.driver_exit_code})"
    reason = status.lower() + exit_code
    tail = last_lines(job_logs(client, job_id), 1) if status == "FAILED" else []
    # A failed replica command's last line is its own one-line error; don't print "error:" twice.
    detail = tail[0].removeprefix("error: ") if tail else _first_line(info.message or "")
    raise ReplicaError(f"job {job_id}", f"{reason}: {detail}" if detail else reason)


def last_lines(logs: str, count: int) -> list[str]:
    """The last `count` non-empty lines of a job's logs."""
    return [line for line in logs.splitlines() if line.strip()][-count:]


def duration_s(info: JobDetails) -> float | None:
    """How long the job has run (until now, if it still runs), in seconds; None before it started."""
    if not info.start_time:
        return None
    end_ms = info.end_time or time.time() * 1000
    return (end_ms - info.start_time) / 1000


def _check_reachable(address: str) -> None:
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReplicaError(address, "give the Ray dashboard's HTTP address, which serves the Jobs API "
                                    "(http://<head>:8265), not a ray:// or GCS address")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise _no_cluster(address) from err


def _no_cluster(address: str) -> ReplicaError:
    return ReplicaError(address, "no Ray cluster answers there (start one with `ray start --head`, or give "
                                 "its dashboard as --address / RAY_ADDRESS)")


@contextmanager
def _talking_to(address: str, job_id: str | None = None) -> Iterator[None]:
    """Turn what the SDK raises for a missing cluster, refused credentials or an unknown job into ReplicaError."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as err:
        raise ReplicaError(address, "the Ray cluster refused authentication: give its token in RAY_AUTH_TOKEN "
                                    "or ~/.ray/auth_token") from err
    except (ConnectionError, requests.ConnectionError) as err:
        raise _no_cluster(address) from err
    except requests.HTTPError as err:
        raise ReplicaError(address, f"the Ray dashboard answered {_first_line(err)}") from err
    except RuntimeError as err:
        if job_id is not None and "status code 404" in str(err):
            raise ReplicaError(f"job {job_id}", f"no such job on the Ray cluster at {address} "
                                                f"(`replica jobs list` shows its jobs)") from err
        raise ReplicaError(address, f"the Ray Jobs API failed: {_first_line(err)}") from err


@contextmanager
def _environment_without(*names: str) -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _quiet_ray_logging() -> None:
    # The SDK logs every packaging step at INFO (each .gitignore it honours, each upload), and warns on every
    # command that .git/.venv are no longer uploaded (a migration notice) and that token auth is on; -v shows them.
    if log.isEnabledFor(logging.INFO):
        return
    for name in ("ray", "ray.dashboard.modules.job.sdk", "ray.dashboard.modules.dashboard_sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("ray._private.runtime_env.working_dir", "ray._private.authentication.authentication_token_setup"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _first_line(err: object) -> str:
    lines = str(err).strip().splitlines()
    return lines[0].rstrip(":. ") if lines else type(err).__name__
