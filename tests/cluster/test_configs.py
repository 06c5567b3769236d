"""The shipped cluster configs parse and carry the fields their tools require."""

from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "cluster" / "configs"


def load(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def test_cluster_launcher_config_has_head_and_gpu_workers():
    cfg = load("ray-cluster.yaml")
    for key in ("cluster_name", "provider", "head_node_type", "available_node_types", "max_workers"):
        assert key in cfg, key
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert any(t["resources"].get("GPU", 0) > 0 for t in cfg["available_node_types"].values())


def test_kuberay_raycluster_pins_our_ray_version_and_has_gpu_workers():
    cfg = load("kuberay-raycluster.yaml")
    assert cfg["apiVersion"] == "ray.io/v1" and cfg["kind"] == "RayCluster"
    assert cfg["spec"]["rayVersion"] == "2.60.0"
    head = cfg["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] and {p["containerPort"] for p in head["ports"]} >= {6379, 8265, 10001}
    worker = cfg["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" in worker["resources"]["limits"]


def test_kuberay_rayjob_runs_a_replica_command():
    cfg = load("kuberay-rayjob.yaml")
    assert cfg["kind"] == "RayJob" and cfg["spec"]["entrypoint"].startswith("replica ")
    assert cfg["spec"]["rayClusterSpec"]["rayVersion"] == "2.60.0"
    assert cfg["spec"]["shutdownAfterJobFinishes"] is True
