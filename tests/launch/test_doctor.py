"""`replica doctor` run as a user runs it (the installed console script), and its version rules."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from launch.doctor import s3fs_check

REPLICA = str(Path(sys.executable).parent / "replica")


def run(*args, cwd, **extra_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | extra_env
    return subprocess.run([REPLICA, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_doctor_reports_stack_runtime_and_storage(tmp_path):
    result = run("doctor", "--set", f"storage.root={tmp_path / 'runs'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in ("torch", "torchaudio", "gsplat", "ray", "deepspeed", "cuda", "gsplat kernels", "renderer",
                 "storage"):
        assert any(line.split()[1:2] == name.split()[:1] for line in lines), f"no line for {name}"
    renderer = "gsplat (CUDA)" if torch.cuda.is_available() else "torch (CPU reference rasterizer)"
    assert any(line.split()[1:] == ["renderer", *renderer.split()] for line in lines)
    assert any(line.startswith("ok   s3fs") for line in lines), "the installed s3fs does not match fsspec"
    assert any("local Ray, started on demand" in line for line in lines)
    assert any(line.startswith("ok   storage") for line in lines)
    assert lines[-1].startswith("verdict: ready")


def test_doctor_fails_on_unreachable_storage(tmp_path):
    result = run("doctor", "--set", "storage.root=s3://bucket/x", "--set", "storage.endpoint_url=http://127.0.0.1:9",
                 "--set", "storage.connect_timeout_s=1", cwd=tmp_path,
                 AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
    assert result.returncode == 1
    assert "FAIL storage            s3://bucket/x: storage endpoint unreachable (http://127.0.0.1:9)" in result.stdout
    assert "not ready" in result.stdout


def test_doctor_names_missing_credentials(tmp_path):
    result = run("doctor", "--set", "storage.root=s3://bucket/x", "--set", "storage.endpoint_url=http://127.0.0.1:9",
                 cwd=tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    assert result.returncode == 1
    assert "s3://bucket/x: no S3 credentials" in result.stdout


def test_doctor_reports_ray_address_from_environment(tmp_path):
    env_result = subprocess.run([REPLICA, "doctor", "--set", f"storage.root={tmp_path}"], capture_output=True,
                                text=True, cwd=tmp_path, env={**os.environ, "RAY_ADDRESS": "ray://head:10001"})
    assert "connect to ray://head:10001" in env_result.stdout


def test_bad_config_key_is_one_line_error(tmp_path):
    result = run("doctor", "--set", "runtime.gpus=2", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: config key runtime.gpus: unknown key"


def test_s3fs_matching_fsspec_is_ok_and_names_the_stack():
    check = s3fs_check("2026.9.0", "2026.9.0", "3.10.0")
    assert (check.name, check.status) == ("s3fs", "ok")
    assert check.detail == "2026.9.0 (fsspec 2026.9.0, aiobotocore 3.10.0)"


def test_s3fs_not_matching_fsspec_is_a_warning():
    check = s3fs_check("0.4.2", "2026.9.0", None)
    assert check.status == "warn"
    assert check.detail.startswith("0.4.2 (fsspec 2026.9.0, aiobotocore not installed): s3fs should have fsspec's")


def test_missing_s3fs_fails():
    assert s3fs_check(None, "2026.9.0", None).status == "fail"
