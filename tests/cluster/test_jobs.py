"""`replica submit` and `replica jobs …` against a real Ray head on loopback, run as a user runs them.

The module starts its own head (`ray start --head`, one CPU, its own temp dir and ports), apart from the
session's local Ray that tests/conftest.py starts with `ray.init`: `ray.init()` looks for a cluster in the
default temp dir only, so neither finds the other. Its processes are ended by pid at teardown (`ray stop` would
end every Ray on the machine). The head's PATH starts with this venv's bin, as the image's does, so a job finds
the `replica` console script.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest
import typer

from datasets.errors import ReplicaError
from tests.replica_cli import run_replica

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def processes_with(marker: str) -> list[psutil.Process]:
    """Live processes whose command line mentions `marker`, and everything they started."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in arg for arg in proc.info["cmdline"] or []):
            found.add(proc)
            try:
                found.update(proc.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    return [proc for proc in found if proc.pid != os.getpid()]


def end_processes(processes: list[psutil.Process]) -> None:
    for proc in processes:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def ray_head():
    """The dashboard URL of a one-CPU Ray head on loopback, stopped (its processes ended) after the module."""
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths inside must stay < 108 chars
    dashboard = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    command = [str(BIN / "ray"), "start", "--head", "--num-cpus=1", "--include-dashboard=true",
               "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}",
               f"--port={free_port()}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"]
    try:
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        url = f"http://127.0.0.1:{dashboard}"
        assert wait_for(lambda: _answers(dashboard), 60), f"the dashboard at {url} never answered"
        yield url
    finally:
        end_processes(processes_with(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def submitted_id(result: subprocess.CompletedProcess) -> str:
    match = re.search(r"submitted (raysubmit_\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    return match.group(1)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error line of a command that failed the way every replica command fails: one line, exit status 1."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_submitted_replica_command_runs_on_the_cluster_and_its_logs_are_retrievable(ray_head, tmp_path):
    root = tmp_path / "root"
    result = run_replica("submit", "--address", ray_head, "--", "replica", "doctor", "--set", f"storage.root={root}",
                         cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = submitted_id(result)
    assert "verdict: ready" in result.stdout  # streamed while it ran
    assert f"{job_id}: SUCCEEDED" in result.stdout

    logs = run_replica("jobs", "logs", job_id, "--address", ray_head, cwd=tmp_path)
    assert logs.returncode == 0 and "verdict: ready" in logs.stdout
    followed = run_replica("jobs", "logs", job_id, "--follow", "--address", ray_head, cwd=tmp_path)
    assert followed.returncode == 0 and "verdict: ready" in followed.stdout
    assert f"{job_id}: SUCCEEDED" in followed.stdout
    assert re.search(r"ray address\s+connect to ", logs.stdout), "doctor ran as a driver of the cluster"
    listed = run_replica("jobs", "list", "--address", ray_head, cwd=tmp_path)
    assert re.search(rf"{job_id}\s+SUCCEEDED", listed.stdout), listed.stdout


def test_failing_job_exits_1_with_its_last_log_line(ray_head, tmp_path):
    result = run_replica("submit", "--address", ray_head, "--", "replica", "data", "ingest", "missing.mp4",
                         "--set", f"storage.root={tmp_path / 'root'}", cwd=REPO, timeout=300)
    job_id = submitted_id(result)
    assert one_line_error(result) == f"error: job {job_id}: failed (exit code 1): missing.mp4: no such file or folder"

    status = run_replica("jobs", "status", job_id, "--address", ray_head, cwd=tmp_path)
    assert status.returncode == 0 and f"{job_id}: FAILED" in status.stdout
    assert "error: missing.mp4: no such file or folder" in status.stdout  # among its last lines


def test_stopped_job_stops_and_its_process_ends(ray_head, tmp_path):
    started = tmp_path / "started"
    script = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(600)"
    result = run_replica("submit", "--address", ray_head, "--no-wait", "--any-command", "--", "python", "-c", script,
                         cwd=tmp_path)
    job_id = submitted_id(result)
    assert wait_for(started.exists, 120), "the job never started"

    stopped = run_replica("jobs", "stop", job_id, "--address", ray_head, cwd=tmp_path)
    assert stopped.returncode == 0 and f"{job_id}: stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    status = run_replica("jobs", "status", job_id, "--address", ray_head, cwd=tmp_path)
    assert f"{job_id}: STOPPED" in status.stdout
    assert wait_for(lambda: not processes_with(str(started)), 30), "the job's process outlived the stop"


def test_job_runs_the_working_directory_without_outputs_environments_or_caches(ray_head, tmp_path):
    project = tmp_path / "project"
    for name in ("train.py", "pkg/model.py", "runs/out.txt", ".venv/bin/python", ".cache/blob", "pkg/__pycache__/m.pyc",
                 "x.egg-info/PKG-INFO", ".git/HEAD"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    listing = ("import os; print('files:', sorted(os.path.relpath(os.path.join(d, f)) "
               "for d, _, fs in os.walk('.') for f in fs))")
    result = run_replica("submit", "--address", ray_head, "--any-command", "--", "python", "-c", listing, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "files: ['pkg/model.py', 'train.py']" in result.stdout


def test_ray_address_is_the_default_address(ray_head, tmp_path):
    listed = run_replica("jobs", "list", cwd=tmp_path, RAY_ADDRESS=ray_head)
    assert listed.returncode == 0, listed.stderr
    assert f"jobs at {ray_head}" in listed.stdout


def test_unknown_job_id_fails_in_one_line(ray_head, tmp_path):
    result = run_replica("jobs", "status", "raysubmit_nosuchjob", "--address", ray_head, cwd=tmp_path)
    assert one_line_error(result).startswith(f"error: job raysubmit_nosuchjob: no such job on the Ray cluster at "
                                             f"{ray_head}")


def test_no_cluster_at_the_address_fails_at_once_in_one_line(tmp_path):
    address = f"http://127.0.0.1:{free_port()}"
    result = run_replica("submit", "--address", address, "--", "replica", "doctor", cwd=tmp_path, timeout=30)
    assert one_line_error(result).startswith(f"error: {address}: no Ray cluster answers there")


def test_refused_authentication_fails_in_one_line(tmp_path):
    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"Unauthorized: Invalid token")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"http://127.0.0.1:{server.server_port}"
        result = run_replica("jobs", "list", "--address", address, cwd=tmp_path, timeout=30)
        assert one_line_error(result).startswith(f"error: {address}: the Ray cluster refused authentication")
    finally:
        server.shutdown()


def test_a_command_the_cli_does_not_have_is_refused_before_submitting(tmp_path):
    result = run_replica("submit", "--address", "http://127.0.0.1:9", "--", "replica", "frobnicate", cwd=tmp_path)
    assert one_line_error(result).startswith("error: replica frobnicate: no such command (replica has: ")


@pytest.mark.parametrize("command, reason", [
    (["python", "train.py"], "not a replica command"),
    (["replica", "pretrain"], "needs a command: one of audio, animator"),
    (["replica", "pretrain", "audio", "--dat", "x"], "No such option: --dat"),
    (["replica", "pretrain", "audio"], "Missing option '--data'"),
    (["replica", "jobs", "list"], "runs on your machine, not as a job"),
])
def test_check_command_names_what_is_wrong(command, reason):
    from launch.cli import app
    from launch.jobs_cli import check_command

    with pytest.raises(ReplicaError, match=re.escape(reason)):
        check_command(typer.main.get_command(app), command)


def test_check_command_accepts_replica_commands_with_their_options():
    from launch.cli import app
    from launch.jobs_cli import check_command

    check_command(typer.main.get_command(app), ["replica", "-v", "pretrain", "audio", "-c", "cluster", "--data",
                                                "s3://bucket/train", "--out", "s3://bucket/runs/audio"])
