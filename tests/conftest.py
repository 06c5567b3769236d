"""Shared fixtures: a real S3-protocol server, one local Ray cluster per session, storage roots, and the
caches the suite fills kept inside the checkout.

The S3 server is moto in server mode (`datasets.s3server`), started as a subprocess on a free loopback
port: the code under test talks HTTP to it exactly as it would to S3 or MinIO (no in-process mocking).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

TEST_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "tests"
"""Where the suite's caches live (ignored by git): compiled ops, pip downloads, wandb, corpora sdists. Kept
between runs, so the DeepSpeed CPU-op and gsplat JIT builds and the corpora downloads happen once."""


def _keep_caches_in_the_checkout() -> None:
    # Set before anything imports torch extensions, wandb or pip. Subprocesses, and the workers of the local Ray
    # this session starts, inherit the environment, so nothing of the suite's lands in the user's ~/.cache.
    os.environ.update({
        "XDG_CACHE_HOME": str(TEST_CACHE),
        "TORCH_EXTENSIONS_DIR": str(TEST_CACHE / "torch_extensions"),
        "TRITON_CACHE_DIR": str(TEST_CACHE / "triton"),
        "PIP_CACHE_DIR": str(TEST_CACHE / "pip"),
        "WANDB_DIR": str(TEST_CACHE / "wandb"),
        "WANDB_CACHE_DIR": str(TEST_CACHE / "wandb" / "cache"),
        "WANDB_CONFIG_DIR": str(TEST_CACHE / "wandb" / "config"),
        "WANDB_DATA_DIR": str(TEST_CACHE / "wandb" / "data"),
    })
    TEST_CACHE.mkdir(parents=True, exist_ok=True)


def _equal_compute_for_every_process() -> None:
    # `make test` runs two pytest sessions side by side on 2 cores (Makefile: SIDE_TESTS), and each starts Ray
    # workers and `replica` subprocesses: a process computing on two OpenMP threads mostly spin-waits for a
    # descheduled one (a tiny model, resemblyzer's LSTM or an avatar step ran 3-9x slower that way than alone).
    # Set before torch is imported; subprocesses inherit it; a Ray task that reserves more CPUs still computes
    # with them (`cluster.runtime.use_reserved_cpus`). `OMP_NUM_THREADS=2 pytest ...` overrides it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    # Ray renices its workers to 15, there to keep a node's own Ray processes responsive. Here it put every Ray
    # task of one session behind the other session's plain processes: a create step that takes 2 s alone waited
    # ~95 s to start its worker beside two busy processes (27 s at niceness 0). Both sessions' work is equal here.
    os.environ.setdefault("RAY_worker_niceness", "0")


_keep_caches_in_the_checkout()
_equal_compute_for_every_process()

import pytest  # noqa: E402

from datasets.corpora import CorporaConfig  # noqa: E402
from datasets.s3server import moto_server, s3_environment  # noqa: E402


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
    with moto_server() as endpoint, s3_environment(endpoint):
        yield endpoint


@pytest.fixture
def s3_root(s3_server) -> str:
    """A fresh, empty bucket on the test S3 server, as an s3:// URL."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/root"


@pytest.fixture
def corpora_config() -> CorporaConfig:
    """The corpora settings with the package cache in `TEST_CACHE` instead of the user's ~/.cache, and a few
    seconds of each Asterisk and Fish Fillets voice instead of the release's minutes."""
    return CorporaConfig(cache_dir=str(TEST_CACHE / "corpora"), asterisk_seconds=8.0, fillets_seconds=8.0)


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

