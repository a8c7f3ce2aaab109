"""What DVC shows: a small headline metrics file and plot tables with every restorer in one table.

Why: the per-job evaluation files hold ~150 numbers each, too many for `dvc metrics show` /
`dvc exp show`, and DVC draws one chart per plot file, so restorers in separate files are
never overlaid.  The report stage writes both views into reports/ (dvc.yaml's top-level
`metrics:` and `plots:` point at them); the per-job files keep the detail.

`python -m gendeg.pipeline.dvc_views show|diff [DVC ARGS]` runs `dvc plots show|diff` with an HTML
page that carries Vega, Vega-Lite and vega-embed inline (copied from Snakemake's report
assets, already installed), so the page renders offline; DVC's own page loads them from a CDN.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from gendeg.runtime.atomic import atomic_path, write_json

HEADLINE_FILE = "metrics.json"
PLOTS_DIR = "plots"
# dvc.yaml's top-level `metrics:` and `plots:` (written by gendeg.pipeline.dvc_yaml): the report stage's
# headline file, and one chart per plot table with every restorer's bars (template .dvc/plots/restorers_bars.json).
DVC_METRICS = [f"reports/{HEADLINE_FILE}"]
DVC_PLOTS = [{f"reports/{PLOTS_DIR}/ood_per_set.csv": {"template": "restorers_bars", "title": "OOD PSNR per set (dB)",
                                                        "x": "psnr", "y": "dataset"}},
             {f"reports/{PLOTS_DIR}/ood_per_degradation.csv": {"template": "restorers_bars",
                                                               "title": "OOD PSNR per degradation (dB)",
                                                               "x": "psnr", "y": "degradation"}}]
# summary.json key -> headline key (nested by job: DVC flattens to e.g. ood_psnr.nafnet-gends)
HEADLINE = {"mean_ood_psnr": "ood_psnr", "mean_ood_ssim": "ood_ssim", "mean_ood_kid": "ood_kid",
            "in_distribution_psnr": "id_psnr", "gain_db": "gain_db"}
PER_SET_COLUMNS = ("psnr", "ssim", "psnr_gain", "input_psnr")


def _rounded(value):
    return round(float(value), 4) if value is not None else None


def headline_metrics(summary: dict) -> dict:
    """The few numbers `dvc metrics show` / `dvc exp show` compare: mean OOD PSNR / SSIM / KID and ID PSNR
    per job, the GenDS-minus-existing gain per architecture, and the scaling curve when there is one."""
    out = {name: {job: _rounded(v) for job, v in summary[key].items()} for key, name in HEADLINE.items()
           if summary.get(key)}
    if any(v is not None for v in (summary.get("gain_db_sd") or {}).values()):  # two seeds or more
        out["gain_db_sd"] = {arch: _rounded(v) for arch, v in summary["gain_db_sd"].items()}
    if summary.get("scaling_mean_ood_psnr"):
        out["scaling_ood_psnr"] = {n: _rounded(v) for n, v in summary["scaling_mean_ood_psnr"].items()}
    return out


def plot_tables(jobs: list[dict], metrics: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """One row per (restorer job, OOD set) and per (job, OOD degradation), with the job's arch and training set."""
    tables: dict[str, list[dict]] = {"ood_per_set": [], "ood_per_degradation": []}
    for job in jobs:
        ood = metrics[job["job"]]["ood"]
        identity = {"job": job["job"], "arch": job["arch"], "training_set": job["train_set"]}
        for name, row in ood["per_set"].items():
            tables["ood_per_set"].append({**identity, "dataset": name, **{k: _rounded(row.get(k)) for k in PER_SET_COLUMNS}})
        for name, row in ood["per_degradation"].items():
            tables["ood_per_degradation"].append({**identity, "degradation": name,
                                                  **{k: _rounded(row.get(k)) for k in PER_SET_COLUMNS}})
    return {name: pd.DataFrame.from_records(rows) for name, rows in tables.items()}


def made_on() -> str:
    """The CPU the figures were made on: the same seed gives other weights on another vector ISA
    (AVX2 vs AVX512), so `dvc metrics diff` against a baseline from another CPU shows it beside the numbers."""
    import torch

    from gendeg.runtime.machine import cpu_model

    return f"{cpu_model()}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def write_dvc_views(summary: dict, jobs: list[dict], metrics: dict[str, dict], out_dir: Path) -> list[Path]:
    """Write <out_dir>/metrics.json (with `made_on`) and <out_dir>/plots/*.csv; return the paths."""
    out_dir = Path(out_dir)
    written = [out_dir / HEADLINE_FILE]
    write_json({**headline_metrics(summary), "made_on": made_on()}, written[0])
    for name, table in plot_tables(jobs, metrics).items():
        path = out_dir / PLOTS_DIR / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n", na_rep="")
        written.append(path)
    return written


# --- offline HTML page for `dvc plots show` -----------------------------------------------------------

_BUNDLES = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")


def vega_bundles() -> list[Path]:
    """Vega, Vega-Lite and vega-embed as installed with Snakemake (its self-contained reports use them)."""
    import snakemake

    root = Path(snakemake.__file__).parent / "assets" / "data"
    paths = [root / name for name in _BUNDLES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Vega bundles not found (Snakemake's report assets): {missing}")
    return paths


def offline_template() -> str:
    """An HTML page for `dvc plots show --html-template` with the scripts inline and no `{scripts}` slot
    (so DVC adds no CDN tags)."""
    scripts = "\n".join(f"<script>\n{p.read_text(encoding='utf8')}\n</script>" for p in vega_bundles())
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>GenDeg: DVC plots</title>\n"
            f"{scripts}\n<style>table {{ border-spacing: 15px; }}</style>\n</head>\n<body>\n{{plot_divs}}\n"
            "</body>\n</html>\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("show", "diff"):
        print("usage: python -m gendeg.pipeline.dvc_views show|diff [dvc plots arguments]", file=sys.stderr)
        return 2
    template = Path(".dvc") / "tmp" / "offline_plots.html"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(offline_template(), encoding="utf8")
    return subprocess.call(["dvc", "plots", argv[0], "--html-template", str(template), *argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
