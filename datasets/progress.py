"""Progress bars that suit where they are written.

On a terminal a bar redraws itself in place, many times a second. Written to a file or a pipe (a Ray
job log, `make demo > demo.log`, CI output) every redraw would stay in the file as one more
carriage-return-separated copy of the bar: thousands per loop. `progress_bar` gives the usual tqdm bar
on a terminal and, anywhere else, plain lines, at most one every `PLAIN_INTERVAL_S` seconds plus the final
count, so a log shows how long work is going and how far it got:

    for step in progress_bar(range(iterations), desc="avatar", disable=not show):
        ...

Every layer uses it (datasets' fan-outs, the renderer's training loops), so it lives at the bottom.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Iterable

from tqdm.auto import tqdm

PLAIN_INTERVAL_S = 5.0
"""Off a terminal: the least time between two progress lines (seconds)."""


class _PlainLines:
    """A text stream that turns tqdm's in-place redraws into whole lines, at most one per `interval_s`.

    tqdm writes each redraw as `\\r<bar><padding>`, and ends a kept bar with `\\n`. A redraw becomes the
    pending line; it is written when `interval_s` has passed since the last line, or when the bar ends.
    The rate limit is kept here too, not only by tqdm's `mininterval`, because `set_postfix` redraws at once.
    """

    def __init__(self, stream: IO[str], interval_s: float):
        self.stream, self.interval_s = stream, interval_s
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self._pending, self._last = "", -float("inf")

    def write(self, text: str) -> int:
        status = text.replace("\r", "").replace("\x1b[A", "").strip()
        if status:
            self._pending = status
        if self._pending and ("\n" in text or time.monotonic() - self._last >= self.interval_s):
            self.stream.write(self._pending + "\n")
            self._pending, self._last = "", time.monotonic()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether `stream` is an interactive terminal (False for files, pipes, None)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 disable: bool = False, file: IO[str] | None = None, leave: bool = False,
                 interval_s: float = PLAIN_INTERVAL_S, width: int = 80) -> tqdm:
    """A tqdm bar over `iterable` (or of `total` steps, advanced with `.update()`) written to `file`.

    file: where the bar goes (default: stderr at call time). On a terminal this is plain tqdm (`leave`:
    keep the finished bar on screen). Elsewhere the bar prints as plain ASCII lines, at most one every
    `interval_s` seconds, at most `width` characters (a long postfix is cut), and always leaves its final line.
    """
    file = file if file is not None else sys.stderr
    if is_terminal(file):
        return tqdm(iterable, total=total, desc=desc, disable=disable, file=file, leave=leave)
    return tqdm(iterable, total=total, desc=desc, disable=disable, file=_PlainLines(file, interval_s), leave=True,
                mininterval=interval_s, ascii=True, dynamic_ncols=False, ncols=width)
