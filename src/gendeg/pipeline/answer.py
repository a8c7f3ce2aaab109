"""A run's answer in a few lines: each restorer beside the unrestored input, and GenDS - existing.

Why here: the same text is the MLflow parent run's description (written by the report stage) and
the last thing every `snakemake` and `gendeg track -- dvc repro` prints, so a user never has to
open a file to learn the result.  Reads only reports/summary.json (no torch import: Snakemake's
end-of-run hook calls it).
"""

from __future__ import annotations

import json
from pathlib import Path

REPORT = Path("reports") / "report.md"
SUMMARY = Path("reports") / "summary.json"


def short_job(job: str) -> str:
    """`nafnet-gends` -> `nafnet · gends` (the restorer run's MLflow name)."""
    arch, _, train_set = job.partition("-")
    return f"{arch} · {train_set}" if train_set else job


def headline_markdown(summary: dict) -> str:
    """The headline table of a summary.json (as reports/ holds it) in Markdown."""
    rows = ["| restorer | mean OOD PSNR (dB) | gain over the input (dB) |", "|---|---:|---:|",
            f"| unrestored input | {summary['mean_ood_input_psnr']:.2f} | |"]
    for job, psnr in summary["mean_ood_psnr"].items():
        rows.append(f"| {short_job(job)} | {psnr:.2f} | {summary['mean_ood_psnr_gain'][job]:+.2f} |")
    sds, seeds = summary.get("gain_db_sd", {}), len(summary.get("seeds", [])) or 1
    gains = [f"**GenDS - existing ({arch}): {gain:+.2f} dB** mean OOD PSNR"
             + (f" (sd {sds[arch]:.2f} over {seeds} seeds)" if sds.get(arch) is not None else " (one seed)")
             for arch, gain in summary["gain_db"].items()]
    return "\n".join(rows + ([""] + gains if gains else []))


def final_lines(root: str | Path = ".") -> list[str]:
    """What a finished run prints last: the headline and where the report is; [] when there is no report yet."""
    root = Path(root)
    try:
        summary = json.loads((root / SUMMARY).read_text())
        table = headline_markdown(summary)
    except (OSError, ValueError, KeyError):
        return []
    return ["", "Result (mean over the OOD sets):", *table.replace("**", "").splitlines(),
            f"Full report: {(root / REPORT).resolve()}"]
