"""Shared fixtures: a real S3-protocol server, one local Ray cluster per session, storage roots.

The S3 server is moto in server mode, started as a subprocess on a free loopback port: the code
under test talks HTTP to it exactly as it would to S3 or MinIO (no in-process mocking).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from datasets import storage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def s3_server():
    """Endpoint URL of a moto S3 server on loopback, with test credentials in the environment."""
    port = free_port()
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto S3 server did not start")
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    previous = storage.s3_options()
    storage.configure(storage.S3Options(endpoint_url=endpoint, retries=1))
    yield endpoint
    storage.configure(previous)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_root(s3_server) -> str:
    """A fresh, empty bucket on the test S3 server, as an s3:// URL."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/root"


@pytest.fixture
def local_root(tmp_path) -> str:
    return str(tmp_path / "root")


@pytest.fixture(params=["local", "s3"])
def any_root(request) -> str:
    """A storage root on local disk and, in a second run of the test, on the S3 server."""
    return request.getfixturevalue("local_root" if request.param == "local" else "s3_root")


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray (2 CPUs) for the whole session; workers see the test S3 endpoint."""
    from cluster.runtime import RuntimeConfig, init_ray

    ray = init_ray(RuntimeConfig(num_cpus=2))
    yield ray
    ray.shutdown()
