"""Fan a function out over many items as Ray tasks, with a progress bar and per-item failures.

The shape every batch job in replica has — ingest N videos, render N synthetic clips, build N
replicas — is "run `fn(item)` once per item somewhere on the cluster, keep going when one item is
bad, tell the user which ones failed and why". `map_with_progress` is that, over plain Ray tasks:

    results, failures = map_with_progress(functools.partial(ingest_file, out=url), sources, "ingest")

Each task runs `fn(item)` in a Ray worker with the driver's storage settings applied. An exception
raised by `fn` (a `ReplicaError` naming a bad input, or anything else) and a task lost with its
worker are caught and returned as a `Failure` for that item; the other items carry on. The driver
shows a progress bar (`datasets.progress`: in place on a terminal, a line every few seconds in a log)
advanced as tasks finish (`ray.wait`), so the bar moves in completion order, while results come back
in item order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from rich.console import Console

from cluster.runtime import RuntimeConfig, init_ray
from datasets import storage
from datasets.progress import progress_bar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Failure:
    """One item whose task did not return a result."""

    index: int
    """Position of the item in the input sequence."""
    item: Any
    """The item itself."""
    error: str
    """One line: the ReplicaError message (`<input>: <reason>`) or `<Type>: <message>`."""


def _one_line(err: BaseException) -> str:
    from datasets.errors import ReplicaError

    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(err, ReplicaError) else f"{type(err).__name__}: {first}"


def _run(fn: Callable, item: Any, s3: storage.S3Options) -> tuple[bool, Any]:
    """Body of each Ray task: apply the driver's storage settings, run fn, catch what it raises."""
    storage.configure(s3)
    try:
        return True, fn(item)
    except Exception as err:  # noqa: BLE001 - one bad item must not stop the batch; it is reported
        return False, _one_line(err)


def map_with_progress(fn: Callable[[Item], Result], items: Sequence[Item], desc: str, *, num_cpus: float = 1,
                      max_in_flight: int | None = None, runtime: RuntimeConfig | None = None,
                      console: Console | None = None, show_progress: bool = True,
                      ) -> tuple[list[Result | None], list[Failure]]:
    """Run `fn(item)` for every item as a Ray task; return (results, failures).

    fn: a picklable callable (a module-level function or a functools.partial of one), called once
    per item in a Ray worker. items: the inputs, each sent to its task (keep them small: URLs and
    settings, not arrays). desc: label of the progress bar. num_cpus: CPUs Ray reserves per task.
    max_in_flight: at most this many tasks submitted at once (None: all; bounds driver memory for
    very long lists). runtime: how to reach or start Ray (used only if Ray is not yet running).
    console: the bar is written to its file (default: stderr). show_progress: False shows no bar.

    results: one entry per item, in item order: fn's return value, or None where the item failed.
    failures: one `Failure` per failed item, in item order.
    """
    ray = init_ray(runtime)
    task = ray.remote(num_cpus=num_cpus, max_retries=0)(_run)
    fn_ref, s3 = ray.put(fn), storage.s3_options()
    results: list[Result | None] = [None] * len(items)
    failures: list[Failure] = []
    pending: dict[Any, int] = {}
    limit = max_in_flight or max(1, len(items))
    next_index = 0
    with progress_bar(total=len(items), desc=desc, disable=not show_progress, leave=True,
                      file=console.file if console is not None else None) as bar:
        while next_index < len(items) or pending:
            while next_index < len(items) and len(pending) < limit:
                pending[task.remote(fn_ref, items[next_index], s3)] = next_index
                next_index += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    ok, value = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a worker lost (crash, OOM kill) fails only its item
                    ok, value = False, _one_line(err)
                if ok:
                    results[index] = value
                else:
                    failures.append(Failure(index, items[index], value))
                bar.update(1)
    failures.sort(key=lambda f: f.index)
    return results, failures
