"""Progress bars: in place on a terminal, a few plain lines in a file or pipe."""

import io
import time

from datasets.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _busy_loop(bar, seconds: float) -> int:
    """Update `bar` as fast as possible for `seconds`, redrawing its postfix every 10 updates."""
    updates, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        bar.update(1)
        updates += 1
        if updates % 10 == 0:
            bar.set_postfix(loss=1.0 / updates)
    bar.close()
    return updates


def test_bar_in_a_file_writes_a_handful_of_whole_lines():
    log = io.StringIO()
    updates = _busy_loop(progress_bar(desc="work", file=log, interval_s=5.0), seconds=2.0)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 1 <= len(lines) <= 3, lines
    assert f"work: {updates}it" in lines[-1]


def test_bar_in_a_file_writes_a_line_per_interval_and_the_final_count():
    log = io.StringIO()
    _busy_loop(progress_bar(total=None, desc="work", file=log, interval_s=0.5), seconds=2.0)
    lines = log.getvalue().splitlines()
    assert 3 <= len(lines) <= 7, lines


def test_iterating_a_bar_in_a_file_ends_on_the_total():
    log = io.StringIO()
    assert sum(1 for _ in progress_bar(range(10_000), desc="items", file=log)) == 10_000
    assert log.getvalue().splitlines()[-1].startswith("items: 100%")


def test_bar_on_a_terminal_redraws_in_place():
    screen = _Terminal()
    for _ in progress_bar(range(3), desc="items", file=screen):
        pass
    assert "\r" in screen.getvalue()


def test_disabled_bar_writes_nothing():
    log = io.StringIO()
    for _ in progress_bar(range(100), desc="items", file=log, disable=True):
        pass
    assert log.getvalue() == ""
