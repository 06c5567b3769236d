"""bench/gpu.sh --dry-run, run for real: the GPU run prepared on a CPU is known to work before GPU time is spent.

One dry run serves every test here (about a minute: each step's CPU check runs in the GPU machine's Python as
`bench/gpu/image.py` simulates it). It packs `.whl/` when that is already complete (a quick no-op) and otherwise
runs with `--no-pack`, since packing from scratch downloads ~80 MB and renders the 256² person (another minute).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["install", "gsplat_build", "pytest_gpu", "render", "avatar", "train", "text_to_video"]


def _packed() -> bool:
    pack = ROOT / ".whl" / "pack.json"
    return pack.exists() and all((pack.parent / row["file"]).exists() for row in json.loads(pack.read_text())["files"])


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu")
    # a generous budget: on a busy 2-core machine a CPU step can outlast the box it would get on the GPU
    command = [str(ROOT / "bench" / "gpu.sh"), "--dry-run", "--budget-s", "1200", "--out", str(out),
               *([] if _packed() else ["--no-pack"])]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1300)
    report = json.loads((out / "gpu-dry-run.json").read_text())
    return {"rc": done.returncode, "output": done.stdout[-4000:] + done.stderr[-4000:], "report": report}


@pytest.mark.slow
def test_dry_run_checks_every_step_in_the_gpu_order_and_passes(dry_run):
    steps = dry_run["report"]["steps"]
    assert list(steps) == STEPS
    allowed = {"ok", "checked"} | ({"skipped"} if not _packed() else set())
    assert {name: step["status"] for name, step in steps.items() if step["status"] not in allowed} == {}
    assert dry_run["rc"] == 0, dry_run["output"]


@pytest.mark.slow
def test_the_pytest_step_collects_the_gpu_tests_without_ray(dry_run):
    selected = dry_run["report"]["steps"]["pytest_gpu"]["result"]["selected"]
    assert any("test_torch_backend_matches_gsplat" in test for test in selected)


@pytest.mark.slow
def test_the_train_step_runs_both_foundation_models_in_bf16(dry_run):
    train = dry_run["report"]["steps"]["train"]["result"]
    assert train["precision"] == "bf16"
    for kind in ("audio", "animator"):
        assert "error" not in train[kind], f"{kind}: {train[kind].get('error')}"
        assert train[kind]["samples_per_s"] > 0


@pytest.mark.slow
def test_what_a_run_carries_fits_in_64_mib(dry_run):
    pack = dry_run["report"]["pack"]
    if pack is None:  # nothing packed on this machine: the run says so instead of pretending to install
        assert not _packed() and dry_run["report"]["steps"]["install"]["status"] == "skipped"
        return
    assert pack["total_mib"] <= 63
    assert all(row["file"].endswith((".deb", ".npz")) or "-cp312-" in row["file"] or "-py3-" in row["file"]
               or "-py2.py3-" in row["file"] for row in pack["files"])


def test_the_simulated_gpu_python_has_no_ray_but_has_the_carried_packages():
    probe = ("import importlib.util as u, sys; "
             "print(u.find_spec('ray') is None, u.find_spec('wandb') is None, u.find_spec('pydantic') is not None)")
    done = subprocess.run([sys.executable, "bench/gpu/image.py", "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.split() == ["True", "True", "True"], done.stderr[-2000:]
