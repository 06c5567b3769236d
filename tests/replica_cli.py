"""Run the installed `replica` console script as a user runs it: a subprocess of the real entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPLICA = str(Path(sys.executable).parent / "replica")


def run_replica(*args: str, cwd: Path | str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`replica *args` in `cwd` with this environment (minus the test S3 server's AWS_* settings) plus `env`;
    returns the finished process with its stdout and stderr as text."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | env
    return subprocess.run([REPLICA, *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=timeout)
