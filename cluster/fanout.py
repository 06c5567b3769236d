"""Fan work out over a Ray cluster: many items, each one or more Ray tasks, with failures kept per item.

The shape every batch job in replica has — ingest N videos, render N synthetic clips, build N replicas —
is "run work for each item somewhere on the cluster, keep going when one item is bad, tell the user which
ones failed and why". Two ways in:

    results, failures = map_with_progress(functools.partial(ingest_file, out=url), sources, "ingest")

runs `fn(item)` as one Ray task per item and returns every result in item order. `fan_out` is the general
form it is built on: an item's work is a driver-side generator that yields `Call`s (a function, its
arguments and the resources its Ray task asks for) and is sent each call's result back, so an item can be a
chain of tasks with different resources (a replica: ingest on a CPU, then the avatar on a GPU):

    def work(item):
        first = yield Call(prepare, (item,), label="prepare")
        return (yield Call(train, (first,), label="train", num_gpus=1))

Results and failures stream to callbacks as items finish, so the driver holds only the items in flight
(`max_in_flight`) whatever the number of items. A call that fails *transiently* — a storage error, a lost
worker — is resubmitted after an exponential backoff (`RetryPolicy`); a `ReplicaError` about an input and
any other exception are final for their item at once (retrying would fail the same way). The progress bar
(`datasets.progress`) shows items done / running / failed, each call label's throughput and the ETA.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable, Literal, Sequence, TypeVar

from rich.console import Console

from cluster.runtime import RuntimeConfig, init_ray
from datasets import storage
from datasets.errors import ReplicaError
from datasets.progress import progress_bar

Item = TypeVar("Item")
Result = TypeVar("Result")

TRANSIENT, INPUT, ERROR = "transient", "input", "error"
"""Kinds of failure: retrying may help (storage, lost worker); the input is bad; anything else (a bug)."""
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_TRANSIENT_NAMES = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                    "ClientConnectorError", "ServerDisconnectedError", "ClientPayloadError"}
"""Connection failures of botocore/aiohttp that are not OSError subclasses."""
STATUS_WIDTH = 160
"""Characters of a progress line in a log (room for the counts and every label's throughput)."""


@dataclass(frozen=True)
class Fault:
    """A failure injected into a call's first `times` attempts, for chaos testing of the retry path."""

    kind: Literal["storage", "worker"]
    """storage: the call raises ConnectionResetError (a dropped storage connection) before its work;
    worker: the worker process exits before its work (Ray reports the worker lost)."""
    times: int = 1


@dataclass(frozen=True)
class Call:
    """One Ray task: `fn(*args)` in a worker, asking Ray for `num_cpus` and `num_gpus`.

    An ObjectRef among `args` (or as `fn`) is resolved by Ray before the call, so a large shared value is
    put once and referenced by every call. `label` names the call in the progress bar and in failures.
    """

    fn: Callable
    args: tuple = ()
    label: str = "task"
    num_cpus: float = 1
    num_gpus: float = 0
    fault: Fault | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: after `backoff_s`, doubling per attempt, at most `backoff_max_s`."""

    retries: int = 0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt` + 1 (after `attempt` failed attempts, ≥ 1)."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))


@dataclass(frozen=True)
class Failure:
    """One item whose work did not finish."""

    index: int
    """Position of the item in the input."""
    item: Any
    """The item itself."""
    error: str
    """One line: the ReplicaError message (`<input>: <reason>`) or `<Type>: <message>`."""
    label: str = ""
    """Label of the call that failed ("" when the driver-side work failed before any call)."""
    kind: str = ERROR
    """TRANSIENT (retries ran out), INPUT (a bad input, never retried) or ERROR."""
    attempts: int = 1
    """Attempts the failing call had."""


@dataclass
class Tally:
    """Counters of a fan-out, for the progress bar and the caller's summary."""

    total: int | None
    outcomes: Counter = field(default_factory=Counter)
    """Finished items by outcome (`outcome(result)`; "done" by default)."""
    failed: int = 0
    running: int = 0
    """Items with a call submitted to Ray."""
    waiting: int = 0
    """Items waiting out a retry's backoff."""
    calls: Counter = field(default_factory=Counter)
    """Calls finished (successfully) per label."""
    retries: Counter = field(default_factory=Counter)
    """Retries per label."""
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def status(self) -> str:
        """The bar's postfix: counts, then each label's calls per minute."""
        minutes = max(self.elapsed(), 1e-9) / 60
        counts = [f"{n} {name}" for name, n in sorted(self.outcomes.items())]
        counts += [f"{self.failed} failed", f"{self.running} running"]
        if self.waiting:
            counts.append(f"{self.waiting} retrying")
        rates = [f"{label} {n / minutes:.3g}/min" for label, n in self.calls.items()]
        return ", ".join(counts) + (" | " + ", ".join(rates) if rates else "")


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(err, ReplicaError) else f"{type(err).__name__}: {first}"


def failure_kind(err: BaseException) -> str:
    """TRANSIENT when `err` or what caused it is a storage/network I/O failure (storage wraps those in a
    ReplicaError naming the URL), INPUT for any other ReplicaError, ERROR for anything else."""
    seen: BaseException | None = err
    for _ in range(8):  # the cause chain, bounded against cycles
        if seen is None:
            break
        if isinstance(seen, OSError) and not isinstance(seen, _PERMANENT_OS_ERRORS):
            return TRANSIENT
        if type(seen).__name__ in _TRANSIENT_NAMES:
            return TRANSIENT
        seen = seen.__cause__ or seen.__context__
    return INPUT if isinstance(err, ReplicaError) else ERROR


def _ray_failure_kind(err: BaseException) -> str:
    """Kind of an exception `ray.get` raised: the task's own exception, or the worker/node/object lost."""
    import ray.exceptions as rex

    if isinstance(err, rex.RayTaskError):
        cause = getattr(err, "cause", None)
        return failure_kind(cause) if isinstance(cause, BaseException) else ERROR
    if isinstance(err, (rex.TaskCancelledError, rex.TaskUnschedulableError, rex.RuntimeEnvSetupError)):
        return ERROR
    return TRANSIENT if isinstance(err, rex.RayError) else failure_kind(err)


def _run(fn: Callable, s3: storage.S3Options, fault: str | None, *args) -> tuple[str, Any]:
    """Body of every task: apply the driver's storage settings, inject a fault if asked, run fn, classify
    what it raises here, where the exception's cause chain is still whole. Returns ("ok", value) or
    (kind, one-line message)."""
    storage.configure(s3)
    try:
        if fault == "worker":
            os._exit(1)
        if fault == "storage":
            raise ConnectionResetError(errno.ECONNRESET, "injected fault: storage connection reset")
        return "ok", fn(*args)
    except Exception as err:  # noqa: BLE001 - one bad item must not stop the batch; it is reported
        return failure_kind(err), _one_line(err)


@dataclass
class _Active:
    """An item in progress: its generator, the call it waits on and that call's attempts so far."""

    index: int
    item: Any
    work: Generator
    call: Call | None = None
    attempts: int = 0


def fan_out(work: Callable[[Item], Generator[Call, Any, Result]], items: Iterable[Item], desc: str, *,
            total: int | None = None, max_in_flight: int = 64, retry: RetryPolicy = RetryPolicy(),
            on_result: Callable[[int, Result], None] | None = None,
            on_failure: Callable[[Failure], None] | None = None,
            outcome: Callable[[Result], str] = lambda result: "done", runtime: RuntimeConfig | None = None,
            console: Console | None = None, show_progress: bool = True) -> Tally:
    """Run `work(item)` for every item, its calls as Ray tasks; stream results and failures to the callbacks.

    work: a driver-side generator function: it yields `Call`s, receives each call's return value, and its
    return value is the item's result. An exception it raises fails the item (kind by `failure_kind`).
    items: consumed lazily (a generator over a huge file is fine). total: the number of items, for the
    bar's ETA (None: unknown). max_in_flight: at most this many items in progress (running or waiting out a
    backoff) at once — what bounds the driver's memory. retry: retries of transiently failed calls.
    on_result(index, result), on_failure(Failure): called on the driver as items end, in completion order.
    outcome(result): the counter a finished item is shown under ("done", "skipped", …).
    runtime: how to reach or start Ray (if not yet running). console: the bar goes to its file (default
    stderr). Returns the final counters.
    """
    ray = init_ray(runtime)
    remote = ray.remote(max_retries=0)(_run)
    options: dict[tuple[float, float], Any] = {}
    s3 = storage.s3_options()
    tally = Tally(total)
    pending: dict[Any, _Active] = {}   # ObjectRef → its item
    backoff: list[tuple[float, int, _Active]] = []  # (ready time, tie-breaker, item)
    tiebreak = itertools.count()
    source = iter(enumerate(items))
    exhausted = False

    def submit(state: _Active) -> None:
        call = state.call
        key = (call.num_cpus, call.num_gpus)
        if key not in options:
            options[key] = remote.options(num_cpus=call.num_cpus, num_gpus=call.num_gpus)
        fault = call.fault.kind if call.fault is not None and state.attempts < call.fault.times else None
        state.attempts += 1
        pending[options[key].remote(call.fn, s3, fault, *call.args)] = state
        tally.running += 1

    def fail(state: _Active, kind: str, error: str) -> None:
        state.work.close()
        tally.failed += 1
        if on_failure is not None:
            on_failure(Failure(state.index, state.item, error, state.call.label if state.call else "", kind,
                               max(state.attempts, 1)))

    def advance(state: _Active, value: Any) -> None:
        """Send the last call's result into the item's work: submit its next call, or finish it."""
        try:
            state.call, state.attempts = state.work.send(value), 0
        except StopIteration as stop:
            tally.outcomes[outcome(stop.value)] += 1
            if on_result is not None:
                on_result(state.index, stop.value)
            bar.update(1)
            return
        except Exception as err:  # noqa: BLE001 - the item's own driver-side logic failed: report it
            state.call = None
            fail(state, failure_kind(err), _one_line(err))
            bar.update(1)
            return
        submit(state)

    def finished(state: _Active, kind: str, value: Any) -> None:
        tally.running -= 1
        if kind == "ok":
            tally.calls[state.call.label] += 1
            advance(state, value)
        elif kind == TRANSIENT and state.attempts <= retry.retries:
            tally.retries[state.call.label] += 1
            tally.waiting += 1
            heapq.heappush(backoff, (time.monotonic() + retry.delay(state.attempts), next(tiebreak), state))
        else:
            fail(state, kind, value if kind != TRANSIENT else f"{value} (gave up after {state.attempts} attempts)")
            bar.update(1)

    with progress_bar(total=total, desc=desc, disable=not show_progress, leave=True, width=STATUS_WIDTH,
                      file=console.file if console is not None else None) as bar:
        while True:
            while not exhausted and len(pending) + len(backoff) < max_in_flight:
                entry = next(source, None)
                if entry is None:
                    exhausted = True
                else:
                    advance(_Active(entry[0], entry[1], work(entry[1])), None)
            now = time.monotonic()
            while backoff and backoff[0][0] <= now:
                tally.waiting -= 1
                submit(heapq.heappop(backoff)[2])
            if not pending and not backoff and exhausted:
                break
            wait_s = max(0.0, min(1.0, backoff[0][0] - now)) if backoff else 1.0  # ≤ 1 s: the bar stays live
            ready = []
            if pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait_s)
                if ready:  # take every result that is ready, not only the first
                    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            else:
                time.sleep(wait_s)
            for ref in ready:
                state = pending.pop(ref)
                try:
                    kind, value = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - a worker or node lost fails (or retries) only its call
                    kind, value = _ray_failure_kind(err), _one_line(err)
                finished(state, kind, value)
            bar.set_postfix_str(tally.status(), refresh=False)
            bar.refresh()
    return tally


def map_with_progress(fn: Callable[[Item], Result], items: Sequence[Item], desc: str, *, num_cpus: float = 1,
                      num_gpus: float = 0, max_in_flight: int | None = None, retry: RetryPolicy = RetryPolicy(),
                      runtime: RuntimeConfig | None = None, console: Console | None = None,
                      show_progress: bool = True) -> tuple[list[Result | None], list[Failure]]:
    """Run `fn(item)` for every item as one Ray task (`fan_out`); return (results, failures).

    fn: a picklable callable (a module-level function or a functools.partial of one), put in the object
    store once. items: the inputs, each sent to its task (keep them small: URLs and settings, not arrays).
    desc: label of the bar and the calls. num_cpus, num_gpus: what Ray reserves per task. max_in_flight:
    at most this many tasks submitted at once (None: all). retry: retries of transient failures (none by
    default). results: fn's return value per item, in item order (None where it failed). failures: one
    `Failure` per failed item, in item order.
    """
    ray = init_ray(runtime)
    fn_ref = ray.put(fn)
    results: list[Result | None] = [None] * len(items)
    failures: list[Failure] = []

    def one(item):
        return (yield Call(fn_ref, (item,), desc, num_cpus, num_gpus))

    fan_out(one, items, desc, total=len(items), max_in_flight=max_in_flight or max(1, len(items)), retry=retry,
            on_result=results.__setitem__, on_failure=failures.append, runtime=runtime, console=console,
            show_progress=show_progress)
    failures.sort(key=lambda f: f.index)
    return results, failures
