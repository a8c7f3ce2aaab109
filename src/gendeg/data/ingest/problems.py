"""What went wrong with the user's data, said per file, and what to do about it."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Literal

from gendeg.runtime.atomic import atomic_path

OnBad = Literal["fail", "skip"]
ON_BAD_CHOICES = ("fail", "skip")


@dataclass(frozen=True)
class Problem:
    """One bad file (or config entry): `path` names it, `reason` says what is wrong."""

    path: str
    dataset: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} [{self.dataset}]: {self.reason}"


class IngestError(ValueError):
    """Raised with every problem found, so a user fixes their data in one pass, not one file per run."""

    def __init__(self, problems: Iterable[Problem], hint: str = ""):
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in the input data:"]
        lines += [f"  - {problem}" for problem in self.problems]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


SKIP_HINT = (
    "Fix these files, or set data.user.on_bad_input: skip to drop the bad pairs "
    "and get a report of them (nothing on disk is changed either way)."
)
CONFIG_HINT = (
    "These are mistakes in data.user of params.yaml; they stop the run even with "
    "on_bad_input: skip, because skipping them would silently drop whole datasets."
)


def check_on_bad(value: str) -> OnBad:
    """Validate the on_bad_input setting, naming the key when it is wrong."""
    if value not in ON_BAD_CHOICES:
        raise IngestError(
            [Problem("params.yaml", "data.user.on_bad_input", f"must be one of {list(ON_BAD_CHOICES)}, got {value!r}")]
        )
    return value  # type: ignore[return-value]


def raise_if_any(problems: list[Problem], on_bad: OnBad) -> None:
    """`fail` turns any problem into one IngestError listing all of them; `skip` lets them through."""
    if problems and on_bad == "fail":
        raise IngestError(problems, hint=SKIP_HINT)


def write_problem_report(problems: Iterable[Problem], path: str | Path) -> None:
    """CSV report (path, dataset, reason), written atomically; an empty list still writes the header."""
    header = [field.name for field in fields(Problem)]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(astuple(problem) for problem in problems)
