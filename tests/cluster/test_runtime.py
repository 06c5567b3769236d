"""The runtime's decisions on this machine (CPU or CUDA), and the shared local Ray."""

import os

import pytest
import torch

from cluster.runtime import RuntimeConfig, largest_node_cpus, resolve, worker_env
from datasets.errors import ReplicaError

CUDA = torch.cuda.is_available()


def test_auto_resolves_to_this_machines_device_precision_and_renderer(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    resolved = resolve(RuntimeConfig())
    expected = ("cuda", "bf16", "gsplat") if CUDA else ("cpu", "fp32", "torch")
    assert (resolved.device, resolved.precision, resolved.renderer) == expected
    assert resolved.ray_address is None


def test_cpu_resolves_to_fp32_and_reference_renderer_on_any_machine():
    resolved = resolve(RuntimeConfig(device="cpu"))
    assert (resolved.device, resolved.precision, resolved.renderer) == ("cpu", "fp32", "torch")


@pytest.mark.skipif(CUDA, reason="this machine has CUDA, so asking for it succeeds (see the auto test)")
def test_asking_for_cuda_without_it_is_a_clear_error():
    with pytest.raises(ReplicaError, match="no CUDA device"):
        resolve(RuntimeConfig(device="cuda"))


def test_gsplat_on_cpu_is_refused():
    with pytest.raises(ReplicaError, match="gsplat has no CPU path"):
        resolve(RuntimeConfig(device="cpu", renderer="gsplat"))


def test_ray_address_comes_from_config_before_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://env:10001")
    assert resolve(RuntimeConfig()).ray_address == "ray://env:10001"
    assert resolve(RuntimeConfig(ray_address="ray://cfg:10001")).ray_address == "ray://cfg:10001"


def test_ray_workers_see_the_storage_endpoint(ray_cluster, s3_server):
    @ray_cluster.remote
    def endpoint():
        return os.environ.get("AWS_ENDPOINT_URL")

    assert ray_cluster.get(endpoint.remote()) == s3_server
    assert worker_env()["AWS_ENDPOINT_URL"] == s3_server


def test_a_task_computes_with_as_many_torch_threads_as_it_reserved_cpus(ray_cluster):
    @ray_cluster.remote
    def threads():
        import torch

        from cluster.runtime import use_reserved_cpus

        before = torch.get_num_threads()  # what Ray's worker gave torch: OMP_NUM_THREADS=1, or a reused pool's
        return before, use_reserved_cpus()

    assert largest_node_cpus(ray_cluster) == 2
    assert largest_node_cpus(ray_cluster, gpus=1) == 1  # no GPU node: a GPU step must not size to a CPU node
    # the same tasks in turn, each reserving 1 then 2 CPUs; workers are reused, so the pools carry over
    got = [ray_cluster.get(threads.options(num_cpus=cpus).remote()) for cpus in (1, 2, 1, 2)]
    assert [after for _, after in got] == [1, 2, 1, 2]
