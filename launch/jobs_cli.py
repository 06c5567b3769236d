"""`replica submit` and `replica jobs …`: run replica commands on a Ray cluster as Ray Jobs, and manage them.

    replica submit --address http://head:8265 --gpus 1 -- replica pretrain audio -c cluster --data s3://…
    replica jobs list | status ID | logs ID [--follow] | stop ID

The command after `--` is checked against this CLI before anything is packaged (its command path, options and
required arguments), so a typo fails here and not minutes later on the cluster; `--any-command` submits any
other shell command unchecked. The work is `cluster.jobs`; this module is the command line around it.
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from cluster.jobs import DEFAULT_ADDRESS
from datasets.errors import ReplicaError
from launch.context import console, err_console

app = typer.Typer(help="Follow and manage the Ray Jobs on a cluster (`replica submit` starts them).",
                  no_args_is_help=True)

AddressOpt = typer.Option(DEFAULT_ADDRESS, "--address", envvar="RAY_ADDRESS", show_envvar=True,
                          help="The cluster's Ray dashboard (Jobs API), http://<head>:8265; else $RAY_ADDRESS, "
                               "else a Ray head on this machine.")
JobIdArg = typer.Argument(..., help="The job's submission id (raysubmit_…), as `replica submit` printed it.")
SUBMIT_CONTEXT = {"allow_interspersed_args": False}
"""`replica submit` reads its own options up to the first word of the command; `--` before it is optional."""
LAST_LINES = 10
"""Log lines `replica jobs status` shows for a job that failed."""
LOCAL_ONLY = {"submit", "jobs"}
"""Commands that talk to a cluster from outside it, so make no sense as a job."""


def submit(ctx: typer.Context,
           command: List[str] = typer.Argument(..., metavar="COMMAND",
                                               help="After --: the replica command to run on the cluster."),
           address: str = AddressOpt,
           gpus: Optional[float] = typer.Option(None, "--gpus", min=0,
                                                help="GPUs reserved for the command's driver process (Ray Train "
                                                     "workers ask for their own); default none."),
           cpus: Optional[float] = typer.Option(None, "--cpus", min=0,
                                                help="CPUs reserved for the command's driver; default none."),
           wait: bool = typer.Option(True, "--wait/--no-wait",
                                     help="Stream the job's logs until it ends, exiting 1 if it fails."),
           working_dir: str = typer.Option(".", "--working-dir",
                                           help="Folder whose code the job runs (uploaded; runs/, .venv, caches "
                                                "and .gitignored files stay behind)."),
           any_command: bool = typer.Option(False, "--any-command",
                                            help="Submit a command that is not a replica command (python x.py, "
                                                 "bash -c …) as it is, unchecked.")):
    """Submit a replica command to a Ray cluster as a Ray Job, with this folder as its code."""
    from cluster.jobs import jobs_client, submit_job

    if not any_command:
        check_command(ctx.find_root().command, command)
    client = jobs_client(address)
    console.print(f"packaging {Path(working_dir).resolve()} (less runs/, .venv, caches, .gitignored files) "
                  f"for {address}", highlight=False)
    job_id = submit_job(client, command, working_dir, num_gpus=gpus, num_cpus=cpus)
    asked = ", ".join(f"{n:g} {unit}" for n, unit in ((gpus, "GPU"), (cpus, "CPU")) if n)
    console.print(f"submitted [bold]{job_id}[/]: {shlex.join(command)}" + (f" ({asked})" if asked else ""),
                  highlight=False)
    if not wait:
        console.print(f"follow it with `replica jobs logs {job_id} --follow`, stop it with "
                      f"`replica jobs stop {job_id}`", highlight=False)
        return
    _follow(client, job_id)


@app.command("list")
def list_(address: str = AddressOpt):
    """List the cluster's jobs, oldest first: id, status, start, duration, command (one line each)."""
    from cluster.jobs import duration_s, jobs_client, list_jobs

    jobs = list_jobs(jobs_client(address))
    for job in jobs:
        console.print(f"{job.submission_id or job.job_id}  {job.status.value:<9}  {_time(job.start_time)}  "
                      f"{_seconds(duration_s(job)):>8}  {job.entrypoint}", highlight=False, markup=False)
    console.print(f"{len(jobs)} jobs at {address}", highlight=False)


@app.command()
def status(job_id: str = JobIdArg, address: str = AddressOpt):
    """Show a job's status, timing and command; for a failed job, its last log lines."""
    from cluster.jobs import duration_s, job_info, job_logs, jobs_client, last_lines

    client = jobs_client(address)
    info = job_info(client, job_id)
    console.print(f"{job_id}: [bold]{info.status.value}[/] — {_first_line(info.message)}", highlight=False)
    console.print(f"  command   {info.entrypoint}\n  started   {_time(info.start_time)}\n"
                  f"  duration  {_seconds(duration_s(info))}", highlight=False)
    if info.driver_exit_code is not None:
        console.print(f"  exit code {info.driver_exit_code}", highlight=False)
    if info.status.value == "FAILED":
        console.print(f"last lines of its log (`replica jobs logs {job_id}` for all):", highlight=False)
        for line in last_lines(job_logs(client, job_id), LAST_LINES):
            console.print(f"  {line}", style="dim", highlight=False, markup=False)


@app.command()
def logs(job_id: str = JobIdArg, address: str = AddressOpt,
         follow: bool = typer.Option(False, "--follow", "-f",
                                     help="Keep streaming until the job ends; exit 1 if it fails.")):
    """Print a job's logs (its driver's stdout and stderr)."""
    from cluster.jobs import job_logs, jobs_client

    client = jobs_client(address)
    if follow:
        _follow(client, job_id)
    else:
        sys.stdout.write(job_logs(client, job_id))


@app.command()
def stop(job_id: str = JobIdArg, address: str = AddressOpt):
    """Stop a running job (SIGTERM to its driver, SIGKILL after a grace period) and wait until it has ended."""
    from cluster.jobs import jobs_client, stop_job

    was_running, info = stop_job(jobs_client(address), job_id)
    state = info.status.value
    if not was_running:
        console.print(f"{job_id}: had already ended ({state})", highlight=False)
    elif state == "PENDING":
        console.print(f"{job_id}: asked to stop; still PENDING, it stops when it starts (Ray fails a job that never "
                      f"gets its resources after RAY_JOB_START_TIMEOUT_SECONDS, 15 min by default)", highlight=False)
    elif state == "STOPPED":
        console.print(f"{job_id}: stopped", highlight=False)
    else:
        console.print(f"{job_id}: asked to stop, now {state}", highlight=False)


def check_command(root, command: List[str]) -> None:
    """Raise ReplicaError unless `command` is `replica …` naming a command of this CLI with options it accepts.

    root: the CLI's top-level command group (`typer.main.get_command(launch.cli.app)`, or
    `ctx.find_root().command` inside a command).
    """
    if not command or command[0] != "replica":
        raise ReplicaError(shlex.join(command) or "replica submit",
                           "not a replica command; give `replica …` after --, or pass --any-command "
                           "to submit another command as it is")
    node, path, words = root, ["replica"], list(command[1:])
    while isinstance(node, TyperGroup):
        while words and words[0].startswith("-"):  # a group's own flags (-v) come before its subcommand
            words.pop(0)
        if not words:
            if node.invoke_without_command:
                return
            raise ReplicaError(" ".join(path), f"needs a command: one of {', '.join(node.list_commands(None))}")
        name = words.pop(0)
        sub = node.get_command(None, name)
        if sub is None:
            raise ReplicaError(" ".join([*path, name]),
                               f"no such command ({' '.join(path)} has: {', '.join(node.list_commands(None))})")
        if path == ["replica"] and name in LOCAL_ONLY:
            raise ReplicaError(f"replica {name}", "runs on your machine, not as a job; submit the command itself")
        node, path = sub, [*path, name]
    try:
        node.make_context(" ".join(path), words)
    except typer.TyperException as err:
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        raise ReplicaError(shlex.join(command), message.replace("\n", " ")) from err


def _follow(client, job_id: str) -> None:
    """Stream a job's logs until it ends, then print how it ended (ReplicaError when it failed or was stopped)."""
    from cluster.jobs import duration_s, follow_job, job_info, raise_if_failed

    info = job_info(client, job_id)
    if info.status.value == "PENDING":  # waiting for resources or its runtime env: say so, or the wait is silent
        console.print(f"{job_id}: PENDING — {_first_line(info.message)}", highlight=False)

    def write(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    try:
        info = follow_job(client, job_id, write)
    except KeyboardInterrupt:
        err_console.print(f"stopped following; the job keeps running (`replica jobs stop {job_id}` stops it)",
                          highlight=False)
        raise
    raise_if_failed(client, info)
    console.print(f"{job_id}: [green]{info.status.value}[/] in {_seconds(duration_s(info))}", highlight=False)


def _first_line(text: Optional[str]) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _time(ms: Optional[int]) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _seconds(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"
