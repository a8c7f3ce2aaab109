"""Progress bars for long loops that also show in log files (updates sparser off a terminal)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 1.0 if interactive else 20.0)
    kwargs.setdefault("dynamic_ncols", interactive)
    return tqdm(iterable, disable=False, **kwargs)
