"""Progress bars for long loops that also show in log files (updates sparser off a terminal).

A job run with `--log` writes its bars to the log; the terminal it was started from (the
one `snakemake` or `dvc repro` shows) then gets one status line per bar refresh instead:
`08:10:02 train restorer (nafnet-gends): 340/600 57% 12.3 it/s ETA 0:00:21`, at most every
GENDEG_STATUS_EVERY seconds (default 20; 0: none), and a last line when the bar closes.
"""

from __future__ import annotations

import datetime
import os
import sys
import time

from tqdm.auto import tqdm

from gendeg.runtime.distributed import is_main_process

_console: int | None = None  # the terminal's file descriptor when stdout/stderr go to a log


def set_console(fd: int | None) -> None:
    """Called by the CLI after it sent stdout/stderr to the job's log."""
    global _console
    _console = fd


def notice(text: str) -> None:
    """A line that matters to the person running the pipeline: in the job's log and on the terminal."""
    print(text, flush=True)
    if _console is not None and is_main_process():
        os.write(_console, f"{time.strftime('%H:%M:%S')} {text}\n".encode())


def _every() -> float:
    return float(os.environ.get("GENDEG_STATUS_EVERY", "20"))


# Every bar's first status line (with its ETA) comes this many seconds after it starts, later ones
# every GENDEG_STATUS_EVERY: a job shorter than the interval still says when it will end.
FIRST_STATUS_AFTER = 3.0


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


def status_line(desc: str, n: int, total: int | None, elapsed: float, done: bool = False) -> str:
    """One line for the terminal: what runs, how far, how fast, and when it ends."""
    stamp = time.strftime("%H:%M:%S")
    rate = n / elapsed if elapsed > 0 else 0.0
    if done:
        return f"{stamp} {desc}: done, {n} in {_clock(elapsed)}\n"
    if not total:
        return f"{stamp} {desc}: {n} in {_clock(elapsed)}, {rate:.2f} it/s\n"
    eta = _clock((total - n) / rate) if rate > 0 else "?"
    return f"{stamp} {desc}: {n}/{total} {100 * n / total:.0f}% {rate:.2f} it/s ETA {eta}\n"


class _Bar(tqdm):
    """tqdm that also reports to the terminal when the job's output goes to a log file."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reported = time.monotonic()
        self._report = _console is not None and _every() > 0 and is_main_process() and not self.disable
        self._first = True

    def _status(self, done: bool = False, n: int | None = None) -> None:
        now = time.monotonic()
        wait = min(_every(), FIRST_STATUS_AFTER) if self._first else _every()
        if not self._report or (not done and now - self._reported < wait):
            return
        self._reported, self._first = now, False
        try:
            os.write(_console, status_line(self.desc.rstrip(": ") or "working", self.n if n is None else n, self.total,
                                           self.format_dict["elapsed"], done).encode())
        except OSError:  # the terminal went away (e.g. a closed ssh session): the log still has it all
            self._report = False

    def __iter__(self):
        """tqdm's iterator updates the bar only every `mininterval` (20 s off a terminal): count here
        until the first status line is out."""
        count = self.n
        for item in super().__iter__():
            count += 1
            if self._first and self._report:
                self._status(n=count)
            yield item

    def update(self, n=1):
        shown = super().update(n)
        self._status()
        return shown

    def close(self):
        if getattr(self, "_report", False) and not getattr(self, "_closed_status", False) and self.n:
            self._closed_status = True
            self._status(done=True)
        super().close()


def progress(iterable=None, **kwargs) -> tqdm:
    interactive = sys.stderr.isatty()
    # tqdm's iterator calls update() only once per mininterval, so the status lines can come
    # no more often than the bar refreshes: a shorter GENDEG_STATUS_EVERY shortens both.
    sparse = 20.0 if _console is None or _every() <= 0 else min(20.0, _every())
    kwargs.setdefault("mininterval", 1.0 if interactive else sparse)
    kwargs.setdefault("dynamic_ncols", interactive)
    return _Bar(iterable, disable=False, **kwargs)
