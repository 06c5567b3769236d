"""An S3-protocol server on loopback, for tests, benchmarks and offline demos.

moto in server mode runs as a subprocess on a free 127.0.0.1 port, so code talks HTTP to it exactly as it would
to S3 or MinIO (no in-process mocking). `s3_environment` points this process, and the Ray workers it starts, at
it with throwaway credentials. moto comes with the `test` extra (`pip install -e '.[test]'`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator

from datasets import storage
from datasets.errors import ReplicaError

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
"""Throwaway credentials: moto accepts any, botocore insists on some."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server(start_timeout_s: float = 30.0) -> Iterator[str]:
    """Run `python -m moto.server` on a free loopback port until the block ends; yields its endpoint URL."""
    if importlib.util.find_spec("moto") is None:
        raise ReplicaError("S3 test server", "moto is not installed (pip install -e '.[test]')")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + start_timeout_s
    try:
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.time() > deadline:
                    raise ReplicaError(f"S3 test server {endpoint}", f"moto did not start within {start_timeout_s:g} s")
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def s3_environment(endpoint: str) -> Iterator[None]:
    """Storage and the AWS environment variables (which Ray workers inherit) aimed at `endpoint` with
    `CREDENTIALS`, for the length of the block; the previous settings come back after it."""
    variables = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    saved_env = {key: os.environ.get(key) for key in variables}
    saved_options = storage.s3_options()
    os.environ.update(variables)
    storage.configure(storage.S3Options(endpoint_url=endpoint, retries=1))  # on loopback a failure is real: fail fast
    try:
        yield
    finally:
        storage.configure(saved_options)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
