"""Stage `report`: what the paper shows, for this run — the OOD table (existing vs GenDS), a
per-set bar plot, and a qualitative grid (input / each restorer / ground truth).

Output folder reports/: report.md, ood_psnr.png, samples.png, summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gendeg import tracking  # noqa: E402
from gendeg.atomic import atomic_dir, write_json  # noqa: E402
from gendeg.images import to_array, write_png  # noqa: E402
from gendeg.manifest import read_manifest  # noqa: E402
from gendeg.pairs import PairBank  # noqa: E402
from gendeg.restorers import load_restorer, restore  # noqa: E402


def ood_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """Rows: training sets; columns: OOD sets + mean; cells: 'PSNR / SSIM'."""
    rows = {}
    for train_set, summary in metrics.items():
        cells = {name: f"{s['psnr']:.2f} / {s['ssim']:.3f}" for name, s in summary["ood"]["per_set"].items()}
        cells["mean OOD"] = f"{summary['ood']['mean_psnr']:.2f} / {summary['ood']['mean_ssim']:.3f}"
        cells["in-distribution"] = f"{summary['in_distribution']['psnr']:.2f} / {summary['in_distribution']['ssim']:.3f}"
        rows[train_set] = cells
    first = next(iter(metrics.values()))
    rows["(degraded input)"] = {name: f"{s['input_psnr']:.2f} / {s['input_ssim']:.3f}" for name, s in first["ood"]["per_set"].items()}
    rows["(degraded input)"]["mean OOD"] = f"{first['ood']['mean_input_psnr']:.2f} / -"
    rows["(degraded input)"]["in-distribution"] = f"{first['in_distribution']['input_psnr']:.2f} / {first['in_distribution']['input_ssim']:.3f}"
    return pd.DataFrame(rows).T


def bar_plot(metrics: dict[str, dict], path: Path) -> None:
    sets = sorted(next(iter(metrics.values()))["ood"]["per_set"])
    x = np.arange(len(sets))
    width = 0.8 / (len(metrics) + 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(sets) + 2), 3.6))
    first = next(iter(metrics.values()))
    ax.bar(x - 0.4 + width / 2, [first["ood"]["per_set"][s]["input_psnr"] for s in sets], width, label="degraded input",
           color="0.75")
    for i, (train_set, summary) in enumerate(metrics.items(), start=1):
        ax.bar(x - 0.4 + width * (i + 0.5), [summary["ood"]["per_set"][s]["psnr"] for s in sets], width, label=train_set)
    ax.set_xticks(x, sets, rotation=30, ha="right")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Out-of-distribution PSNR per set")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def sample_grid(models: dict[str, Path], prepared_dir: Path, size: int, per_set: int) -> np.ndarray:
    """Rows: one OOD image per set (up to `per_set` each); columns: input, each restorer, ground truth."""
    ood = read_manifest(Path(prepared_dir) / "ood.csv")
    picks = ood.groupby("dataset", sort=True).head(per_set)
    bank = PairBank(picks, size=size, description="loading samples")
    degraded, clean = bank.tensors()
    columns = [degraded] + [restore(load_restorer(d).eval(), degraded) for d in models.values()] + [clean]
    return np.concatenate([np.concatenate([to_array(c[r]) for c in columns], axis=1) for r in range(len(bank))], axis=0)


def report(config: dict, metrics_files: dict[str, Path], model_dirs: dict[str, Path], prepared_dir: Path,
           out_dir: Path) -> dict:
    cfg = config["report"]
    metrics = {name: json.loads(Path(path).read_text()) for name, path in metrics_files.items()}
    table = ood_table(metrics)
    means = {name: m["ood"]["mean_psnr"] for name, m in metrics.items()}
    summary = {"mean_ood_psnr": means, "mean_ood_ssim": {n: m["ood"]["mean_ssim"] for n, m in metrics.items()},
               "in_distribution_psnr": {n: m["in_distribution"]["psnr"] for n, m in metrics.items()},
               "mean_ood_input_psnr": next(iter(metrics.values()))["ood"]["mean_input_psnr"]}
    if "existing" in means and "gends" in means:
        summary["gain_db"] = means["gends"] - means["existing"]
    with tracking.job_run("report", "report", config) as run, atomic_dir(out_dir) as tmp:
        bar_plot(metrics, tmp / "ood_psnr.png")
        grid = sample_grid(model_dirs, prepared_dir, cfg["image_size"], cfg["samples_per_set"])
        write_png(grid, tmp / "samples.png")
        write_json(summary, tmp / "summary.json")
        lines = [
            "# GenDeg pipeline report", "",
            f"Preset `{config['preset']}`. Restorers trained with the same architecture and step budget on each training set,",
            "evaluated on held-out scenes with degradations made by generators the training data never used.", "",
            "## Out-of-distribution PSNR / SSIM (higher is better)", "", table.to_markdown(), "",
        ]
        if "gain_db" in summary:
            lines += [f"Mean OOD PSNR, existing -> GenDS: {means['existing']:.2f} -> {means['gends']:.2f} dB "
                      f"({summary['gain_db']:+.2f} dB).", ""]
        lines += ["![OOD PSNR per set](ood_psnr.png)", "",
                  "## Samples", "", "Columns: degraded input, " + ", ".join(model_dirs) + ", ground truth.", "",
                  "![samples](samples.png)", ""]
        (tmp / "report.md").write_text("\n".join(lines))
        run.log_metrics({f"mean_ood_psnr.{k}": v for k, v in means.items()})
        run.log_image(grid, "samples.png")
        run.log_artifact(tmp / "report.md")
        run.log_artifact(tmp / "ood_psnr.png")
    return summary
