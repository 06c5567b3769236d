"""Shared fixtures: a real S3-protocol server, one local Ray cluster per session, storage roots.

The S3 server is moto in server mode, started as a subprocess on a free loopback port: the code
under test talks HTTP to it exactly as it would to S3 or MinIO (no in-process mocking).
"""

from __future__ import annotations

import os
import uuid

import pytest

from datasets import storage
from tests.s3server import moto_server


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
    with moto_server() as endpoint:
        yield from _with_test_credentials(endpoint)


def _with_test_credentials(endpoint: str):
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
