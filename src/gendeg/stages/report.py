"""Stage `report`: what the paper shows, for this run.

- the OOD table: rows architecture x training set, columns OOD sets, cells PSNR / SSIM / KID;
- mean OOD distances (KID, FID, sliced Wasserstein) next to the degraded input's;
- the in- vs out-of-distribution table for every restorer (the paper's point that generated
  data alone is worse in distribution, and the mix best in and out);
- figures: OOD PSNR per set, OOD PSNR per degradation (one series per training set), the
  data-scaling curve (when `scaling_counts` is set) and a qualitative grid.

Output folder reports/: report.md, ood_psnr.png, ood_per_degradation.png, [scaling.png],
samples.png, summary.json.  Figures are written without timestamps so that the same
metrics give the same bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gendeg.data.images import to_array, write_png  # noqa: E402
from gendeg.data.manifest import read_manifest  # noqa: E402
from gendeg.data.pairs import PairBank  # noqa: E402
from gendeg.pipeline import tracking  # noqa: E402
from gendeg.pipeline.answer import headline_markdown, short_job  # noqa: E402
from gendeg.pipeline.dvc_views import write_dvc_views  # noqa: E402
from gendeg.restorers import load_restorer, restore  # noqa: E402
from gendeg.runtime.atomic import atomic_dir, write_json  # noqa: E402
from gendeg.runtime.machine import describe_machine

PNG_METADATA = {"Software": None}


def restorer_jobs(config: dict, metrics_dir: Path, models_dir: Path) -> list[dict]:
    """Every (architecture, training set, seed) job of params.yaml, with its metrics file and model folder
    (laid out as the stage table's evaluate and train_restorer stages write them)."""
    return [{"job": f"{arch}-{train_set}", "arch": arch, "train_set": train_set, "seed": seed,
             "metrics": Path(metrics_dir) / arch / train_set / f"seed-{seed}.json",
             "model": Path(models_dir) / arch / train_set / f"seed-{seed}"}
            for arch in config["architectures"] for train_set in config["training_sets"] for seed in config["seeds"]]


def mean_over_seeds(values: list):
    """Metrics of one restorer's seeds as one metrics tree: numbers averaged, anything else (and values
    every seed shares, so one seed gives its own tree back exactly) taken from the first seed."""
    first = values[0]
    if isinstance(first, dict):
        return {key: mean_over_seeds([v.get(key) for v in values]) for key in first}
    if all(v == first for v in values):
        return first
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return math.fsum(values) / len(values)
    return first


def spread(values: list[float]) -> float | None:
    """Sample standard deviation over seeds (None for one seed: no spread to show)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def seed_table(groups: list[dict], per_seed: dict[str, dict[int, dict]]) -> pd.DataFrame:
    """Per restorer: OOD and ID PSNR of every seed, their mean and spread."""
    rows = {}
    for g in groups:
        ood = [m["ood"]["mean_psnr"] for m in per_seed[g["job"]].values()]
        in_dist = [m["in_distribution"]["psnr"] for m in per_seed[g["job"]].values()]
        rows[f"{g['arch']} / {g['train_set']}"] = {
            "OOD PSNR per seed": ", ".join(_fmt(v, 2) for v in ood),
            "OOD mean ± sd": f"{_fmt(float(np.mean(ood)), 2)} ± {_fmt(spread(ood), 2)}",
            "ID mean ± sd": f"{_fmt(float(np.mean(in_dist)), 2)} ± {_fmt(spread(in_dist), 2)}"}
    return pd.DataFrame(rows).T


def gains_per_seed(per_seed: dict[str, dict[int, dict]], archs: list[str]) -> dict[str, dict[str, float]]:
    """Per architecture and seed: mean OOD PSNR of gends minus existing, paired by seed."""
    return {arch: {str(seed): per_seed[f"{arch}-gends"][seed]["ood"]["mean_psnr"]
                   - per_seed[f"{arch}-existing"][seed]["ood"]["mean_psnr"] for seed in per_seed[f"{arch}-gends"]}
            for arch in archs if f"{arch}-gends" in per_seed and f"{arch}-existing" in per_seed}


def _load(path: Path) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"report: metrics file {path} not found (is its evaluate job in the DAG?)")
    return json.loads(Path(path).read_text())


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(s: dict, prefix: str = "") -> str:
    return f"{_fmt(s[prefix + 'psnr'], 2)} / {_fmt(s[prefix + 'ssim'], 3)} / {_fmt(s[prefix + 'kid'], 3)}"


def ood_table(jobs: list[dict], metrics: dict[str, dict]) -> pd.DataFrame:
    """Rows: architecture x training set (+ the degraded input); columns: OOD sets + mean; cells PSNR / SSIM / KID."""
    rows = {}
    for job in jobs:
        m = metrics[job["job"]]["ood"]
        cells = {name: _cell(s) for name, s in m["per_set"].items()}
        cells["mean OOD"] = f"{_fmt(m['mean_psnr'], 2)} / {_fmt(m['mean_ssim'], 3)} / {_fmt(m['mean_kid'], 3)}"
        rows[f"{job['arch']} / {job['train_set']}"] = cells
    first = metrics[jobs[0]["job"]]["ood"]
    rows["(degraded input)"] = {name: _cell(s, "input_") for name, s in first["per_set"].items()}
    rows["(degraded input)"]["mean OOD"] = (f"{_fmt(first['mean_input_psnr'], 2)} / {_fmt(first.get('mean_input_ssim'), 3)}"
                                            f" / {_fmt(first['mean_input_kid'], 3)}")
    return pd.DataFrame(rows).T


def distance_table(jobs: list[dict], metrics: dict[str, dict]) -> pd.DataFrame:
    """Mean over OOD sets of KID, FID, SWD, and the same over all OOD images pooled (lower is better).

    With the optional perceptual extra (evaluate.perceptual), also LPIPS and Inception FID / KID.
    """
    def row(m: dict, prefix: str) -> dict:
        out = {"KID (mean over sets)": _fmt(m[f"mean_{prefix}kid"], 4), "FID (mean over sets)": _fmt(m[f"mean_{prefix}fid"], 3),
               "SWD (mean over sets)": _fmt(m[f"mean_{prefix}swd"], 4), "KID (pooled)": _fmt(m["pooled"][f"{prefix}kid"], 4),
               "FID (pooled)": _fmt(m["pooled"][f"{prefix}fid"], 3), "SWD (pooled)": _fmt(m["pooled"][f"{prefix}swd"], 4)}
        if f"mean_{prefix}lpips" in m:
            out |= {"LPIPS (mean over sets)": _fmt(m[f"mean_{prefix}lpips"], 4),
                    "Inception FID (pooled)": _fmt(m["pooled"][f"{prefix}inception_fid"], 2),
                    "Inception KID (pooled)": _fmt(m["pooled"][f"{prefix}inception_kid"], 4)}
        return out
    rows = {f"{j['arch']} / {j['train_set']}": row(metrics[j["job"]]["ood"], "") for j in jobs}
    rows["(degraded input)"] = row(metrics[jobs[0]["job"]]["ood"], "input_")
    return pd.DataFrame(rows).T


def id_vs_ood_table(jobs: list[dict], metrics: dict[str, dict]) -> pd.DataFrame:
    """Per restorer: in-distribution (test split) vs out-of-distribution (mean over OOD sets) PSNR / SSIM / KID."""
    rows = {}
    for j in jobs:
        m = metrics[j["job"]]
        i, o = m["in_distribution"], m["ood"]
        rows[f"{j['arch']} / {j['train_set']}"] = {
            "ID PSNR": _fmt(i["psnr"], 2), "OOD PSNR": _fmt(o["mean_psnr"], 2), "ID SSIM": _fmt(i["ssim"], 3),
            "OOD SSIM": _fmt(o["mean_ssim"], 3), "ID KID": _fmt(i["kid"], 3), "OOD KID": _fmt(o["mean_kid"], 3)}
    i, o = metrics[jobs[0]["job"]]["in_distribution"], metrics[jobs[0]["job"]]["ood"]
    rows["(degraded input)"] = {
        "ID PSNR": _fmt(i["input_psnr"], 2), "OOD PSNR": _fmt(o["mean_input_psnr"], 2), "ID SSIM": _fmt(i["input_ssim"], 3),
        "OOD SSIM": _fmt(o.get("mean_input_ssim"), 3), "ID KID": _fmt(i["input_kid"], 3), "OOD KID": _fmt(o["mean_input_kid"], 3)}
    return pd.DataFrame(rows).T


def restoration_table(jobs: list[dict], metrics: dict[str, dict]) -> pd.DataFrame:
    """Per restorer and OOD degradation: PSNR gain over the unrestored input, the same on mean-matched
    images (structure only: each image's per-channel mean set to the target's) and the colour shift
    left (mean |restored - target| of the channel means; the input's in the last row)."""
    first = metrics[jobs[0]["job"]]["ood"]
    degradations = list(first["per_degradation"])
    rows = {}
    for j in jobs:
        m = metrics[j["job"]]
        cells = {d: (f"{_fmt(s['psnr_gain'], 2)} / {_fmt(s['mean_matched_gain'], 2)} / {_fmt(s['colour_shift'], 3)}")
                 for d, s in m["ood"]["per_degradation"].items()}
        o, i = m["ood"], m["in_distribution"]
        cells["mean OOD"] = (f"{_fmt(o['mean_psnr_gain'], 2)} / {_fmt(o['mean_mean_matched_gain'], 2)} / "
                             f"{_fmt(o['mean_colour_shift'], 3)}")
        cells["in distribution"] = f"{_fmt(i['psnr_gain'], 2)} / {_fmt(i['mean_matched_gain'], 2)} / {_fmt(i['colour_shift'], 3)}"
        rows[f"{j['arch']} / {j['train_set']}"] = cells
    inputs = {d: f"0 / 0 / {_fmt(first['per_degradation'][d]['input_colour_shift'], 3)}" for d in degradations}
    inputs["mean OOD"] = f"0 / 0 / {_fmt(first['mean_input_colour_shift'], 3)}"
    inputs["in distribution"] = f"0 / 0 / {_fmt(metrics[jobs[0]['job']]['in_distribution']['input_colour_shift'], 3)}"
    rows["(degraded input)"] = inputs
    return pd.DataFrame(rows).T


def headline(jobs: list[dict], metrics: dict[str, dict]) -> list[str]:
    """One line per restorer: OOD and in-distribution PSNR beside the unrestored input's."""
    o, i = metrics[jobs[0]["job"]]["ood"], metrics[jobs[0]["job"]]["in_distribution"]
    lines = [f"- unrestored input: OOD {_fmt(o['mean_input_psnr'], 2)} dB, in distribution {_fmt(i['input_psnr'], 2)} dB"]
    for j in jobs:
        m = metrics[j["job"]]
        lines.append(f"- {j['arch']} / {j['train_set']}: OOD {_fmt(m['ood']['mean_psnr'], 2)} dB "
                     f"({m['ood']['mean_psnr_gain']:+.2f} over the input; mean-matched "
                     f"{m['ood']['mean_mean_matched_gain']:+.2f}), in distribution "
                     f"{_fmt(m['in_distribution']['psnr'], 2)} dB ({m['in_distribution']['psnr_gain']:+.2f})")
    return lines


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=PNG_METADATA)
    plt.close(fig)


def grouped_bars(groups: list[str], series: dict[str, list[float]], baseline: list[float], title: str,
                 ax) -> None:
    """Bars per group: the degraded input (grey) then one bar per series."""
    x = np.arange(len(groups))
    width = 0.8 / (len(series) + 1)
    ax.bar(x - 0.4 + width / 2, baseline, width, label="degraded input", color="0.75")
    for i, (label, values) in enumerate(series.items(), start=1):
        ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=label)
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    low = min(min(baseline), *(min(v) for v in series.values()))
    ax.set_ylim(bottom=max(0.0, np.floor(low) - 2))


def per_set_plot(jobs: list[dict], metrics: dict[str, dict], path: Path) -> None:
    first = metrics[jobs[0]["job"]]["ood"]["per_set"]
    sets = sorted(first)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(sets) + 2), 3.8))
    grouped_bars(sets, {j["job"]: [metrics[j["job"]]["ood"]["per_set"][s]["psnr"] for s in sets] for j in jobs},
                 [first[s]["input_psnr"] for s in sets], "Out-of-distribution PSNR per set", ax)
    _save(fig, path)


def per_degradation_plot(jobs: list[dict], metrics: dict[str, dict], path: Path) -> None:
    """One panel per architecture; bars: OOD PSNR per degradation, one series per training set."""
    archs = list(dict.fromkeys(j["arch"] for j in jobs))
    first = metrics[jobs[0]["job"]]["ood"]["per_degradation"]
    degradations = list(first)
    fig, axes = plt.subplots(len(archs), 1, figsize=(max(6, 1.2 * len(degradations) + 2), 3.6 * len(archs)),
                             squeeze=False)
    for ax, arch in zip(axes[:, 0], archs, strict=True):
        series = {j["train_set"]: [metrics[j["job"]]["ood"]["per_degradation"][d]["psnr"] for d in degradations]
                  for j in jobs if j["arch"] == arch}
        grouped_bars(degradations, series, [first[d]["input_psnr"] for d in degradations],
                     f"{arch}: OOD PSNR per degradation", ax)
    _save(fig, path)


def scaling_plot(scaling: dict[int, dict], references: dict[str, float], arch: str, path: Path) -> None:
    """Mean OOD PSNR against generated pairs per degradation (requested), dashed lines: the main restorers."""
    counts = sorted(scaling)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(counts, [scaling[n]["ood"]["mean_psnr"] for n in counts], "o-", label=f"{arch}: existing + first N generated")
    for label, value in references.items():
        ax.axhline(value, linestyle="--", linewidth=1, color="0.5" if "existing" in label else "C1", label=label)
    if counts and counts[0] >= 1 and counts[-1] / max(counts[0], 1) >= 10:
        ax.set_xscale("log")
    if ax.get_xscale() == "linear":
        ax.set_xticks(counts)
    ax.set_xlabel("generated pairs per degradation (N)")
    ax.set_ylabel("mean OOD PSNR (dB)")
    ax.set_title("Data scaling")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)


def sample_grid(models: dict[str, Path], prepared_dir: Path, size: int, per_set: int) -> tuple[np.ndarray, list[str]]:
    """Rows: one OOD image per set (up to `per_set` each); columns: input, each restorer, ground truth.
    Returns the grid and each row's OOD set (MLflow's copy names them)."""
    ood = read_manifest(Path(prepared_dir) / "ood.csv")
    picks = ood.groupby("dataset", sort=True).head(per_set)
    bank = PairBank(picks, size=size, description="loading samples")
    degraded, clean = bank.tensors()
    columns = [degraded] + [restore(load_restorer(d).eval(), degraded) for d in models.values()] + [clean]
    grid = np.concatenate([np.concatenate([to_array(c[r]) for c in columns], axis=1) for r in range(len(bank))], axis=0)
    return grid, [str(name) for name in picks["dataset"]]


def _gains(jobs: list[dict], means: dict[str, float]) -> dict[str, float]:
    """Per architecture: mean OOD PSNR of gends minus existing (the paper's headline)."""
    return {arch: means[f"{arch}-gends"] - means[f"{arch}-existing"]
            for arch in dict.fromkeys(j["arch"] for j in jobs)
            if f"{arch}-gends" in means and f"{arch}-existing" in means}


def provenance(config: dict) -> str:
    """Commit, machine and seed of these figures: the same seed gives other weights on another CPU."""
    git = tracking.git_tags()
    commit = (f"commit {git['gendeg.git_commit']}" + (" with uncommitted changes" if git["gendeg.git_dirty"] == "true" else "")
              if git else "no git commit")
    return (f"Made at {commit} on {describe_machine(host=False)}; seed {config['seed']}. Every job's seed and torch "
            "thread count: `resolved_params/<stage>.json` and each job's MLflow run.")


def report(config: dict, jobs: list[dict], scaling_files: dict[int, Path], prepared_dir: Path, out_dir: Path) -> dict:
    cfg = config["report"]
    if not jobs:
        raise ValueError("report: no restorer jobs (architectures x training_sets is empty)")
    per_seed: dict[str, dict[int, dict]] = {}
    for j in jobs:
        per_seed.setdefault(j["job"], {})[j.get("seed")] = _load(j["metrics"])
    # One entry per restorer (architecture x training set), its metrics the mean over its seeds and its
    # sample-grid model the first seed's: every table below shows seed means.
    first_seed: dict[str, dict] = {}
    for j in jobs:
        first_seed.setdefault(j["job"], j)
    jobs = list(first_seed.values())
    metrics = {job: mean_over_seeds(list(by_seed.values())) for job, by_seed in per_seed.items()}
    seeds = sorted({seed for by_seed in per_seed.values() for seed in by_seed if seed is not None})
    gains_by_seed = gains_per_seed(per_seed, list(dict.fromkeys(j["arch"] for j in jobs)))
    scaling = {int(n): _load(path) for n, path in scaling_files.items()}
    means = {j["job"]: metrics[j["job"]]["ood"]["mean_psnr"] for j in jobs}
    first = metrics[jobs[0]["job"]]
    summary = {
        "mean_ood_psnr": means,
        "mean_ood_ssim": {j["job"]: metrics[j["job"]]["ood"]["mean_ssim"] for j in jobs},
        "mean_ood_kid": {j["job"]: metrics[j["job"]]["ood"]["mean_kid"] for j in jobs},
        "mean_ood_fid": {j["job"]: metrics[j["job"]]["ood"]["mean_fid"] for j in jobs},
        "mean_ood_swd": {j["job"]: metrics[j["job"]]["ood"]["mean_swd"] for j in jobs},
        "in_distribution_psnr": {j["job"]: metrics[j["job"]]["in_distribution"]["psnr"] for j in jobs},
        "mean_ood_input_psnr": first["ood"]["mean_input_psnr"],
        "mean_ood_psnr_gain": {j["job"]: metrics[j["job"]]["ood"]["mean_psnr_gain"] for j in jobs},
        "mean_ood_mean_matched_gain": {j["job"]: metrics[j["job"]]["ood"]["mean_mean_matched_gain"] for j in jobs},
        "in_distribution_input_psnr": first["in_distribution"]["input_psnr"],
        "mean_ood_input_kid": first["ood"]["mean_input_kid"],
        "gain_db": _gains(jobs, means),
        "scaling_mean_ood_psnr": {str(n): scaling[n]["ood"]["mean_psnr"] for n in sorted(scaling)},
        "seeds": seeds,
        "seed_ood_psnr": {job: {str(seed): m["ood"]["mean_psnr"] for seed, m in by_seed.items()}
                          for job, by_seed in per_seed.items()},
        "gain_db_per_seed": gains_by_seed,
        "gain_db_sd": {arch: spread(list(by_seed.values())) for arch, by_seed in gains_by_seed.items()},
    }
    scaling_arch = config["architectures"][0]
    lines = [
        "# GenDeg pipeline report", "",
        f"Preset `{config['preset']}`. Every architecture trained with the same step budget on each training set "
        "(`existing`: the existing pairs; `gends`: existing + GenDeg-generated; `gendeg`: generated only; "
        "`oracle`: existing + the physics generator on the same images), evaluated on held-out scenes with "
        "degradations made by generators the training data never used.", "",
        "## Headline: each restorer beside the unrestored input"
        + (f" (mean over {len(seeds)} seeds)" if len(seeds) > 1 else ""), "", *headline(jobs, metrics), "",
        "## Does it restore? Gain over the input per OOD degradation", "",
        "Cells: PSNR gain over the unrestored input (dB) / the same after matching each image's per-channel mean "
        "to the target's (dB; structure only, a re-tint gains nothing) / colour shift left (mean |restored - target| "
        "of the channel means).", "",
        restoration_table(jobs, metrics).to_markdown(disable_numparse=True), "",
        "## Out-of-distribution PSNR / SSIM / KID", "",
        "PSNR (dB) and SSIM on RGB in [0, 1]: higher is better. KID between restored images and their ground truth "
        "in the feature space of a degradation classifier trained on the training split only (stage `train_classifier`): "
        "lower is better.", "",
        ood_table(jobs, metrics).to_markdown(disable_numparse=True), "",
    ]
    for arch, gain in summary["gain_db"].items():
        sd = summary["gain_db_sd"].get(arch)
        lines += [f"Mean OOD PSNR of {arch}, existing -> GenDS: {means[f'{arch}-existing']:.2f} -> "
                  f"{means[f'{arch}-gends']:.2f} dB ({gain:+.2f} dB"
                  + (f", sd {sd:.2f} over {len(seeds)} seeds paired by seed)." if sd is not None else ", one seed)."), ""]
    lines += ["## Across seeds", "",
              f"Seeds {', '.join(map(str, seeds))} (params.yaml `seeds:`): every restorer trained once per seed; the "
              "tables above show the mean over seeds. A difference inside the spread is not a difference"
              + (". One seed gives no spread: `gendeg comparison seeds` runs five." if len(seeds) < 2 else "."), "",
              seed_table(jobs, per_seed).to_markdown(disable_numparse=True), ""]
    lines += ["![OOD PSNR per set](ood_psnr.png)", "",
              "## Distributional distances (lower is better)", "",
              "KID and FID on the frozen classifier's features, SWD: sliced Wasserstein-1 between raw 7x7 RGB patch "
              "distributions (no network). Mean over OOD sets, and over all OOD images as one set.", "",
              distance_table(jobs, metrics).to_markdown(disable_numparse=True), "",
              "## In distribution vs out of distribution", "",
              "In distribution: the test split (the training datasets' scenes and generators, new crops and draws). "
              "Out of distribution: mean over the OOD sets.", "",
              id_vs_ood_table(jobs, metrics).to_markdown(disable_numparse=True), "",
              "## Per degradation", "", "![OOD PSNR per degradation](ood_per_degradation.png)", ""]
    if scaling:
        table = pd.DataFrame({str(n): {"generated pairs (all degradations)": s.get("restorer", {}).get("generated_pairs", "-"),
                                       "mean OOD PSNR": _fmt(s["ood"]["mean_psnr"], 2),
                                       "mean OOD KID": _fmt(s["ood"]["mean_kid"], 3),
                                       "ID PSNR": _fmt(s["in_distribution"]["psnr"], 2)}
                              for n, s in sorted(scaling.items())}).T
        table.index.name = "N per degradation"
        lines += ["## Data scaling", "",
                  f"{scaling_arch} trained on the existing pairs + the first N generated pairs of each degradation "
                  "(fewer where the filter kept fewer), same budget.", "", table.to_markdown(disable_numparse=True), "",
                  "![scaling curve](scaling.png)", ""]
    models = {j["job"]: j["model"] for j in jobs}
    lines += ["## Samples", "", "Columns: degraded input, " + ", ".join(models) + ", ground truth.", "",
              "![samples](samples.png)", "", "## Provenance", "", provenance(config), ""]
    with tracking.job_run("report", "report", config) as run, atomic_dir(out_dir) as tmp:
        per_set_plot(jobs, metrics, tmp / "ood_psnr.png")
        per_degradation_plot(jobs, metrics, tmp / "ood_per_degradation.png")
        figures = ["ood_psnr.png", "ood_per_degradation.png"]
        if scaling:
            references = {f"{scaling_arch} / {s}": means[f"{scaling_arch}-{s}"] for s in ("existing", "gends")
                          if f"{scaling_arch}-{s}" in means}
            scaling_plot(scaling, references, scaling_arch, tmp / "scaling.png")
            figures.append("scaling.png")
        grid, sets = sample_grid(models, prepared_dir, cfg["image_size"], cfg["samples_per_set"])
        write_png(grid, tmp / "samples.png")
        write_json(summary, tmp / "summary.json")
        write_dvc_views(summary, jobs, metrics, tmp)  # reports/metrics.json and plots/*.csv for DVC
        (tmp / "report.md").write_text("\n".join(lines))
        run.log_metrics({f"mean_ood_psnr.{k}": v for k, v in means.items()}
                        | {f"gain_db.{k}": v for k, v in summary["gain_db"].items()})
        run.log_image(grid, "samples.png", columns=["input", *map(short_job, models), "target"], rows=sets)
        tracking.summarise_parent(run, headline_markdown(summary) + "\n\nFull report: reports/report.md",
                                  summary["gain_db"])
        run.log_artifact(tmp / "report.md")
        for name in figures:
            run.log_artifact(tmp / name)
    return summary


def report_from_dirs(config: dict, metrics_dir: Path, models_dir: Path, prepared_dir: Path, out_dir: Path) -> dict:
    """`report` over the evaluation files and restorer folders the pipeline lays out under two folders."""
    scaling = {n: Path(metrics_dir) / "scaling" / f"{n}.json" for n in config["scaling_counts"]}
    return report(config, restorer_jobs(config, metrics_dir, models_dir), scaling, prepared_dir, out_dir)
