"""Write the Markdown tables of README.md and docs/*.md from the result files they cite.

Why: hand-typed figures drift from the files they quote (a re-run rewrites the JSON, nobody
retypes the doc). Every table here is a generated block:

    <!-- table: NAME (from benchmarks/results/FILE.json; python docs/tables.py) -->
    | ... |
    <!-- /table -->

The first line names the files the numbers come from; the function registered under NAME
(one short function per table, `@table(NAME, FILE, ...)`) builds the rows from those files.

    python docs/tables.py            rewrite every block in place
    python docs/tables.py --check    exit 1 naming each stale block (tests/unit/test_docs_tables.py)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MINUS = "\u2212"
DEGRADATIONS = ["haze", "rain", "snow", "motion_blur", "low_light", "raindrop"]
BLOCK = re.compile(r"<!-- table: (?P<name>[\w-]+) \(from [^)]*\) -->\n.*?<!-- /table -->", re.S)
TABLES: dict = {}


# ---------------------------------------------------------------- helpers


def table(name, *sources):
    """Register `fn(*loaded_sources) -> (header, rows)` as the table NAME built from SOURCES."""
    def register(fn):
        TABLES[name] = (sources, fn)
        return fn
    return register


def path_of(source: str) -> str:
    """Repository-relative path: bare names live in benchmarks/results/."""
    return source if "/" in source and not source.startswith("archive/") else f"benchmarks/results/{source}"


@lru_cache(maxsize=None)
def load(source: str) -> dict:
    return json.loads((ROOT / path_of(source)).read_text())


def num(x: float, nd: int = 2, sign: bool = False) -> str:
    """x rounded to nd decimals; U+2212 for minus; `sign` adds + (and keeps −0.00, as typed)."""
    text = f"{abs(x):.{nd}f}"
    if x < 0 and (sign or float(text) != 0):
        return MINUS + text
    return ("+" if sign else "") + text


def sg(x: float, nd: int = 2) -> str:
    return num(x, nd, sign=True)


def sci(x: float) -> str:
    """3.5e-4, not 3.5e-04."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def pm(stat: dict, nd: int = 2, sign: bool = True) -> str:
    """'mean ± std' of a {mean, std} dict."""
    return f"{num(stat['mean'], nd, sign)} ± {num(stat['std'], nd)}"


def verdict(stat: dict) -> str:
    """'mean ± std (verdict)' of a difference over seeds."""
    return f"{pm(stat)} ({stat['verdict']})"


def deg(name: str) -> str:
    return name.replace("_", " ")


def markdown(header, rows) -> str:
    frame = pd.DataFrame(rows, columns=range(len(header)))
    frame.columns = header
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True)


def render(name: str) -> str:
    sources, fn = TABLES[name]
    header, rows = fn(*(load(s) for s in sources))
    files = ", ".join(path_of(s) for s in sources)
    return f"<!-- table: {name} (from {files}; python docs/tables.py) -->\n{markdown(header, rows)}\n<!-- /table -->"


def update(text: str) -> tuple[str, list[str]]:
    """Text with every block regenerated, and the names of the blocks that changed."""
    stale = []

    def replace(match):
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"no table function named {name!r}")
        new = render(name)
        if new != match[0]:
            stale.append(name)
        return new

    return BLOCK.sub(replace, text), stale


def stale_blocks() -> list[str]:
    """'doc: name' for every generated block whose text differs from what the files give."""
    out = []
    for doc in DOCS:
        _, stale = update(doc.read_text())
        out += [f"{doc.relative_to(ROOT)}: {name}" for name in stale]
    return out


# ---------------------------------------------------------------- restorers: shared pieces


def training_set(result: dict, name: str) -> dict:
    return result["restoration"]["per_training_set"][name]


def worst(per_degradation: dict, key: str = "psnr_gain") -> tuple[str, float]:
    name = min(per_degradation, key=lambda d: per_degradation[d][key])
    return deg(name), per_degradation[name][key]


def target(flags: dict, prefix: str, labels=("existing", "GenDS")) -> str:
    """'met by existing only' etc. from each set's `targets` booleans (key found by prefix)."""
    met = [label for label, f in zip(labels, flags) if next(v for k, v in f.items() if k.startswith(prefix))]
    if not met:
        return "**not met**"
    return f"**met by {met[0]} only**" if len(met) == 1 else "**met by both**"


def photo(result: dict, label: str) -> dict:
    return result["restorers"][label]["over_seeds"]["mean"]


def comparison(result: dict, a: str, b: str) -> dict:
    return next(c["mean"] for c in result["comparisons"] if (c["a"], c["b"]) == (a, b))


def restorer_rows(columns) -> list:
    """The four rows every restorer comparison shares; columns: (ood_default result, set name)."""
    sets = [training_set(r, s) for r, s in columns]
    return [
        ["in distribution, gain over the input", *(pm(t["in_distribution_gain_db"]) for t in sets)],
        ["mean OOD (built-in), gain over the input", *(pm(t["ood_gain_db"]) for t in sets)],
        ["mean-matched OOD gain", *(pm(t["ood_mean_matched_gain_db"]) for t in sets)],
        ["worst OOD degradation (motion blur)" if all(worst(t["per_degradation"])[0] == "motion blur" for t in sets)
         else "worst OOD degradation", *(sg(worst(t["per_degradation"])[1]) for t in sets)],
    ]


def per_degradation_gains(columns) -> list:
    """Gain over the input per OOD degradation; columns: (ood_default result, set name)."""
    return [[deg(d), *(sg(training_set(r, s)["per_degradation"][d]["psnr_gain"]) for r, s in columns)]
            for d in DEGRADATIONS]


def difference_per_degradation(result: dict, key: str = "gends_vs_existing", with_sets=True) -> tuple:
    """Per OOD degradation: each set's gain over the input and the difference (PSNR / structure)."""
    a, b = ("oracle", "existing") if key.startswith("oracle") else ("gends", "existing")
    diff = result["restoration"][key]["per_degradation"]
    names = {"gends": "GenDS", "oracle": "oracle", "existing": "existing"}
    header = ["OOD degradation"]
    if with_sets:
        header += [f"{names[b]}, gain over the input", f"{names[a]}, gain over the input"]
    header += [f"{names[a]} − {names[b]}, PSNR", f"{names[a]} − {names[b]}, mean-matched", "colour shift"]
    rows = []
    for d in DEGRADATIONS:
        row = [deg(d)]
        if with_sets:
            row += [sg(training_set(result, s)["per_degradation"][d]["psnr_gain"]) for s in (b, a)]
        row += [sg(diff[d]["psnr"]), sg(diff[d]["mean_matched_psnr"]), sg(diff[d]["colour_shift"], 3)]
        rows.append(row)
    return header, rows


# ---------------------------------------------------------------- docs/restoration.md


LEVERS = [("baseline (600 steps)", "old default (600 steps)", ["existing", "gends"]),
          ("colour augment 0.2", "colour augmentation 0.2", ["existing"]),
          ("identity 0.15", "clean → clean pairs 0.15", ["existing", "gends"]),
          ("identity 0.25", "clean → clean pairs 0.25", ["existing", "gends"]),
          ("identity 0.25, 1800 steps", "clean → clean 0.25, 1800 steps", ["existing", "gends"])]


@table("restorer_levers", "restorer_levers.json")
def restorer_levers(levers):
    rows = []
    for variant, label, sets in LEVERS:
        for i, s in enumerate(sets):
            r = levers["results"][variant][s]
            rows.append([label if i == 0 else "", "existing" if s == "existing" else "GenDS",
                         sg(r["in_distribution"]["psnr_gain"]), sg(r["ood"]["mean_psnr_gain"]),
                         sg(r["ood"]["mean_mean_matched_gain"]), sg(worst(r["ood"]["per_degradation"])[1])])
    return (["restorer recipe", "set", "in distribution", "mean OOD", "mean-matched OOD",
             "worst OOD degradation"], rows)


@table("identity_pairs_earlier_cpu", "archive/ood_default_identity_pairs_earlier_cpu.json")
def identity_pairs_earlier_cpu(r):
    ex, gd = training_set(r, "existing"), training_set(r, "gends")
    flags = [ex["targets"], gd["targets"]]
    diff = r["restoration"]["gends_vs_existing"]
    dflag = lambda p: "**not met**" if not next(v for k, v in diff["targets"].items() if k.startswith(p)) else "**met**"
    w = [worst(t["per_degradation"]) for t in (ex, gd)]
    return (["mean ± std over 5 seeds, dB", "existing", "GenDS", "target (see the top of this page)"], [
        ["in distribution, gain over the input (`in_distribution_gain_db`)", pm(ex["in_distribution_gain_db"]),
         pm(gd["in_distribution_gain_db"]), "≥ +3: " + target(flags, "in_distribution_gain")],
        ["mean OOD, gain over the input (`ood_gain_db`)", pm(ex["ood_gain_db"]), pm(gd["ood_gain_db"]),
         "≥ +1.5: " + target(flags, "ood_gain")],
        ["mean-matched OOD gain (`ood_mean_matched_gain_db`)", pm(ex["ood_mean_matched_gain_db"]),
         pm(gd["ood_mean_matched_gain_db"]), "≥ +1: " + target(flags, "ood_mean_matched_gain")],
        ["worst OOD degradation (`per_degradation`)", f"{w[0][0]} {sg(w[0][1])}", f"{w[1][0]} {sg(w[1][1])}",
         "≥ −0.5: " + target(flags, "no degradation below")],
        ["GenDS − existing, mean OOD PSNR (`gends_vs_existing.ood_psnr`)", "", verdict(diff["ood_psnr"]),
         "> 0 beyond the spread: " + dflag("GenDS - existing OOD PSNR")],
        ["GenDS − existing, mean-matched OOD", "", verdict(diff["ood_mean_matched_psnr"]),
         "> 0 beyond the spread: " + dflag("GenDS - existing mean-matched")],
        ["GenDS − existing, in distribution", "", verdict(diff["in_distribution_psnr"]),
         "≥ −0.3: " + dflag("GenDS - existing in distribution")],
    ])


@table("identity_pairs_earlier_cpu_per_degradation", "archive/ood_default_identity_pairs_earlier_cpu.json")
def identity_pairs_earlier_cpu_per_degradation(r):
    return difference_per_degradation(r)


@table("identity_pairs_earlier_cpu_photos", "archive/ood_photos_identity_pairs_earlier_cpu.json")
def identity_pairs_earlier_cpu_photos(p):
    def row(label, name, spread=True):
        m = photo(p, name)
        if not spread:
            return [label, num(m["psnr"]["mean"]), sg(m["psnr_gain"]["mean"]), sg(m["mean_matched_psnr_gain"]["mean"])]
        return [label, pm(m["psnr"], sign=False), sg(m["psnr_gain"]["mean"]), pm(m["mean_matched_psnr_gain"])]
    c = comparison(p, "gends", "existing")
    return (["mean over degradations, dB", "PSNR", "gain over the input", "mean-matched gain"], [
        ["unrestored input", num(p["input"]["mean"]["psnr"]), "0", "0"],
        row("existing, 5 seeds", "existing"),
        row("GenDS, 5 seeds", "gends"),
        row("old default (no clean → clean pairs), existing, seed 0", "old-existing", spread=False),
        row("old default, GenDS, seed 0", "old-gends", spread=False),
        ["GenDS − existing, 5 seeds (`comparisons`)", pm(c["psnr"]), "", pm(c["mean_matched_psnr"])],
    ])


@table("colour_range", "ood_default.json", "ood_default_colour_range_off.json", "ood_photos.json")
def colour_range(on, off, photos):
    cols = [(on, "existing"), (off, "gends"), (on, "gends")]
    sets = [training_set(r, s) for r, s in cols]
    d_off, d_on = (r["restoration"]["gends_vs_existing"] for r in (off, on))
    ph = [photo(photos, s) for s in ("existing", "gends-colour-range-off", "gends")]
    c_off, c_on = comparison(photos, "gends-colour-range-off", "existing"), comparison(photos, "gends", "existing")
    return ([f"mean ± std over 5 seeds, dB", "existing", "GenDS, colour range off", "GenDS, colour range on (default)"], [
        ["in distribution, gain over the input", *(pm(t["in_distribution_gain_db"]) for t in sets)],
        [f"mean OOD (built-in, input {num(on['mean_ood_input_psnr'])}), gain over the input",
         *(pm(t["ood_gain_db"]) for t in sets)],
        ["mean-matched OOD gain", *(pm(t["ood_mean_matched_gain_db"]) for t in sets)],
        ["GenDS − existing, mean OOD PSNR", "", verdict(d_off["ood_psnr"]), verdict(d_on["ood_psnr"])],
        ["GenDS − existing, mean-matched OOD", "", pm(d_off["ood_mean_matched_psnr"]), pm(d_on["ood_mean_matched_psnr"])],
        ["GenDS − existing, in distribution", "", pm(d_off["in_distribution_psnr"]), pm(d_on["in_distribution_psnr"])],
        [f"photographs (input {num(photos['input']['mean']['psnr'])}), PSNR", *(pm(m["psnr"], sign=False) for m in ph)],
        ["photographs, GenDS − existing (PSNR / mean-matched)", "",
         f"{pm(c_off['psnr'])} / {pm(c_off['mean_matched_psnr'])}", f"{pm(c_on['psnr'])} / {pm(c_on['mean_matched_psnr'])}"],
    ])


@table("colour_range_per_degradation", "ood_default.json", "ood_default_colour_range_off.json")
def colour_range_per_degradation(on, off):
    return (["OOD degradation (gain over the input, 5-seed means, dB)", "existing", "GenDS, colour range off",
             "GenDS, colour range on (default)"], per_degradation_gains([(on, "existing"), (off, "gends"), (on, "gends")]))


@table("oracle", "ood_default.json", "ood_default_oracle.json")
def oracle(default, orc):
    rows = restorer_rows([(default, "existing"), (orc, "oracle"), (default, "gends")])[:3]
    d = orc["restoration"]["oracle_vs_existing"]
    rows.append(["oracle − existing: OOD PSNR / mean-matched / in distribution", "",
                 " / ".join(verdict(d[k]) for k in ("ood_psnr", "ood_mean_matched_psnr", "in_distribution_psnr")), ""])
    rows.append(["mean OOD PSNR", *(num(r["mean_ood_psnr"][s]["mean"]) for r, s in
                                    [(default, "existing"), (orc, "oracle"), (default, "gends")])])
    return (["mean ± std over 5 seeds, dB", "existing", "oracle (existing + physics pairs on GenDS's scenes)",
             "GenDS (default)"], rows)


@table("oracle_per_degradation", "ood_default_oracle.json")
def oracle_per_degradation(orc):
    return difference_per_degradation(orc, "oracle_vs_existing")


@table("steps1800", "ood_default.json", "ood_default_steps1800.json")
def steps1800(default, long):
    return (["mean ± std over 5 seeds, dB", "existing, 600", "existing, 1800", "GenDS, 600", "GenDS, 1800"],
            restorer_rows([(default, "existing"), (long, "existing"), (default, "gends"), (long, "gends")]))


@table("gends_vs_existing", "ood_default.json", "ood_default_steps1800.json", "ood_default_crop64.json")
def gends_vs_existing(default, long, crop):
    cols = [r["restoration"]["gends_vs_existing"] for r in (default, long, crop)]
    return (["GenDS − existing, mean ± std over 5 seeds, dB", "default (600 steps, crop 48)", "1800 steps",
             "crop 64"], [
        [label, *(verdict(c[key]) for c in cols)]
        for label, key in [("mean OOD PSNR", "ood_psnr"), ("mean-matched OOD", "ood_mean_matched_psnr"),
                           ("in distribution", "in_distribution_psnr")]])


@table("steps1800_per_degradation", "ood_default_steps1800.json")
def steps1800_per_degradation(long):
    return difference_per_degradation(long)


@table("photos_oracle_steps1800", "ood_photos.json")
def photos_oracle_steps1800(p):
    rows = []
    for label, name in [("existing, 600 steps", "existing"), ("GenDS, 600 steps (default)", "gends"),
                        ("oracle, 600 steps", "oracle"), ("existing, 1800 steps", "existing-1800"),
                        ("GenDS, 1800 steps", "gends-1800")]:
        m = photo(p, name)
        rows.append([label, pm(m["psnr"], sign=False), sg(m["psnr_gain"]["mean"]), pm(m["mean_matched_psnr_gain"])])
    for label, a, b in [("oracle − existing", "oracle", "existing"), ("GenDS − oracle", "gends", "oracle"),
                        ("GenDS − existing, 1800 steps", "gends-1800", "existing-1800")]:
        c = comparison(p, a, b)
        rows.append([label, pm(c["psnr"]), "", pm(c["mean_matched_psnr"])])
    return ([f"photographs, 128 px, input {num(p['input']['mean']['psnr'])} dB", "PSNR", "gain over the input",
             "mean-matched gain"], rows)


def photo_gains(p: dict, labels) -> tuple:
    """Photographs: each restorer's gain over the input per degradation (mean over its seeds)."""
    return (["photographs: gain over the input, 5-seed means, dB", *(l for _, l in labels)], [
        [deg(d), *(sg(p["restorers"][name]["over_seeds"]["per_degradation"][d]["psnr_gain"]["mean"])
                   for name, _ in labels)] for d in DEGRADATIONS])


@table("identity_pairs_earlier_cpu_photos_per_degradation", "archive/ood_photos_identity_pairs_earlier_cpu.json")
def identity_pairs_earlier_cpu_photos_per_degradation(p):
    return photo_gains(p, [("existing", "existing"), ("gends", "GenDS")])


@table("photos_per_degradation", "ood_photos.json")
def photos_per_degradation(p):
    return photo_gains(p, [("existing", "existing, 600"), ("gends", "GenDS, 600"), ("existing-1800", "existing, 1800"),
                           ("gends-1800", "GenDS, 1800")])


@table("crop64", "ood_default.json", "ood_default_crop64.json", "ood_photos.json", "ood_photos_crop64.json")
def crop64(default, crop, photos, photos_crop):
    rows = restorer_rows([(default, "existing"), (crop, "existing"), (default, "gends"), (crop, "gends")])
    ph = [photo(photos, "existing"), photo(photos_crop, "existing-crop64"), photo(photos, "gends"),
          photo(photos_crop, "gends-crop64")]
    rows.append([f"photographs, PSNR (input {num(photos['input']['mean']['psnr'])})", *(pm(m["psnr"], sign=False) for m in ph)])
    c = comparison(photos_crop, "gends-crop64", "existing-crop64")
    rows.append(["photographs, GenDS − existing with crop 64 (PSNR / mean-matched)", "",
                 f"{pm(c['psnr'])} / {pm(c['mean_matched_psnr'])}", "", ""])
    return (["mean ± std over 5 seeds, dB", "existing, crop 48", "existing, crop 64", "GenDS, crop 48",
             "GenDS, crop 64"], rows)


@table("crop64_per_degradation", "ood_default_crop64.json")
def crop64_per_degradation(crop):
    return difference_per_degradation(crop)


@table("abstention_bound", "abstention_bound.json")
def abstention_bound(a):
    rows = []
    for bench, bench_label in [("builtin", "built-in"), ("photos", "photographs")]:
        for label, name in [("existing, 48 px (seed 0)", "existing"), ("GenDS, 48 px (seed 0)", "gends"),
                            ("existing, crop 64 (5 seeds)", "existing-crop64"), ("GenDS, crop 64 (5 seeds)", "gends-crop64")]:
            s = a["benchmarks"][bench]["labels"][name]["over_seeds"]
            pair = lambda k: f"{sg(s[k]['psnr']['mean'])} / {sg(s[k]['mean_matched_psnr']['mean'])}"
            best = s["oracle_blend"]["mean_matched_psnr"]["per_degradation"]
            top = max(best, key=best.get)
            rows.append([label, bench_label, pair("restorer"), pair("oracle_blend"), f"{deg(top)} {sg(best[top])}"])
    return (["restorer", "benchmark", "restorer: PSNR / mean-matched", "oracle blend: PSNR / mean-matched",
             "oracle mean-matched, best degradation"], rows)


# ---------------------------------------------------------------- docs/results.md


@table("pipeline_time", "pipeline_time.json")
def pipeline_time(t):
    d, s = t["default"], t["smoke"]
    jobs = d["job_seconds"]
    span = lambda prefix: "–".join(f"{v:.0f}" for v in (min(v for k, v in jobs.items() if k.startswith(prefix)),
                                                         max(v for k, v in jobs.items() if k.startswith(prefix))))
    per_job = (f"prepare {jobs['prepare']:.0f} s, train_gendeg {jobs['train_gendeg']:.0f} s, "
               f"train_structure_correction {jobs['train_structure_correction']:.0f} s (S off), "
               f"synthesize {span('synthesize/')} s per degradation, train_classifier {jobs['train_classifier']:.0f} s, "
               f"train_restorer {span('train_restorer/')} s, evaluate {span('evaluate/')} s each, "
               f"report {jobs['report']:.0f} s")
    psnr = d["mean_ood_psnr"]
    return (["", ""], [
        ["wall time, `snakemake --cores all`, default preset",
         f"**{d['wall_s']:.0f} s ({d['wall_s'] / 60:.1f} min)** (`default.wall_s`)"],
        ["per job (`default.job_seconds`)", per_job],
        ["largest job's memory", f"{d['peak_rss_mb']:.0f} MB (`default.peak_rss_mb`)"],
        ["smoke preset", f"{s['wall_s']:.0f} s ({s['wall_s'] / 60:.1f} min), {s['peak_rss_mb']:.0f} MB (`smoke`)"],
        ["mean OOD PSNR, existing / GenDS (NAFNet, seed 0)",
         f"{num(psnr['nafnet-existing'])} / {num(psnr['nafnet-gends'])} dB (`default.mean_ood_psnr`)"],
    ])


@table("no_identity_pairs", "archive/ood_default_no_identity_pairs.json")
def no_identity_pairs(r):
    g, kid, swd = r["gain_db"], r["mean_ood_kid"], r["mean_ood_swd"]
    seeds = ", ".join(sg(x) for x in g["per_seed"])
    return (["", "mean ± std over 5 seeds"], [
        ["mean OOD PSNR, existing", f"{pm(r['mean_ood_psnr']['existing'], sign=False)} dB"],
        ["mean OOD PSNR, GenDS", f"{pm(r['mean_ood_psnr']['gends'], sign=False)} dB"],
        ["**gain** (`gain_db`)", f"**{pm(g)} dB** ({g['verdict']}); per seed {seeds}"],
        ["degraded input (`mean_ood_input_psnr`)", f"{num(r['mean_ood_input_psnr'])} dB"],
        ["in distribution (`in_distribution_psnr.gain_db`)", f"{pm(r['in_distribution_psnr']['gain_db'])} dB"],
        ["mean OOD KID, existing → GenDS (`mean_ood_kid`)",
         f"{num(kid['existing']['mean'], 3)} → {num(kid['gends']['mean'], 3)}; change "
         f"{pm(r['kid_change'], 3)}, {r['kid_change']['verdict']}"],
        ["mean OOD patch SWD, existing → GenDS (`mean_ood_swd`)",
         f"{num(swd['existing']['mean'], 4)} → {num(swd['gends']['mean'], 4)}"],
    ])


@table("no_identity_pairs_per_degradation", "archive/ood_default_no_identity_pairs.json")
def no_identity_pairs_per_degradation(r):
    per = r["per_degradation"]
    bold = lambda text, v: text if v == "within spread" else f"**{text}**"
    return (["", *(deg(d) for d in DEGRADATIONS)], [
        ["PSNR gain, dB", *(bold(sg(per[d]["gain"]), per[d]["verdict"]) if per[d]["verdict"] != "within spread"
                            else f"{sg(per[d]['gain'])} ± {num(per[d]['gain_std'])}" for d in DEGRADATIONS)],
        ["KID change", *(bold(sg(per[d]["kid_change"]["mean"], 3), per[d]["kid_change"]["verdict"]) for d in DEGRADATIONS)],
        ["SWD change", *(bold(sg(per[d]["swd_change"]["mean"], 4), per[d]["swd_change"]["verdict"]) for d in DEGRADATIONS)],
    ])


@table("no_identity_pairs_scaling", "archive/ood_default_no_identity_pairs.json")
def no_identity_pairs_scaling(r):
    curve = r["scaling_curve"]["mean_ood_psnr"]
    names = {"0": "0 (existing)", "all": "all kept"}
    return (["N per degradation", *(names.get(k, k) for k in curve)],
            [["dB", *(pm(v, sign=False) for v in curve.values())]])


@table("full_comparison", "full_comparison.json")
def full_comparison(f):
    jobs, sets = f["jobs"], ["existing", "gendeg", "gends", "oracle"]
    archs = [("nafnet", "NAFNet"), ("promptir", "PromptIR"), ("swin", "Swin")]
    rows = [[label, *(f"{num(jobs[f'{a}-{s}']['mean_ood_psnr'])} ({num(jobs[f'{a}-{s}']['in_distribution_psnr'])})"
                      for s in sets)] for a, label in archs]
    rows.append(["KID: NAFNet / PromptIR / Swin",
                 *(" / ".join(num(jobs[f"{a}-{s}"]["mean_ood_kid"], 3) for a, _ in archs) for s in sets)])
    return (["", *sets], rows)


@table("intensity_control", "intensity_control.json")
def intensity_control(ic):
    kid = lambda x: num(x, 2 if abs(x) >= 0.1 else 3)
    return (["degradation", "r(requested, realised μ)", "realised / requested μ", "type accuracy",
             "KID of the change to real (oracle)"], [
        [deg(d), num(ic[d]["pearson_r"]), num(ic[d]["mu_ratio"]), num(ic[d]["type_accuracy"]),
         f"{kid(ic[d]['kid_change'])} ({num(ic[d]['kid_change_oracle'], 3)})"] for d in DEGRADATIONS])


@table("gpu_throughput", "gpu_throughput.json")
def gpu_throughput(g):
    p, s, d = g["paper"], g["paper"]["sampling"], g["default_preset"]
    diff = d["gpu_vs_cpu_max_abs_difference"]
    return (["", ""], [
        ["training, 256×256, batch 16, bf16, EMA 0.9999 (`paper.train`)",
         f"{p['train']['steps_per_s']:.2f} steps/s ({p['train']['images_per_s']:.0f} images/s), "
         f"peak {p['train']['peak_gpu_memory_gb']:.1f} GB"],
        ["sampling at 256, fp32, batch 8 (`paper.sampling`)",
         f"Euler-ancestral 100 steps {s['euler_ancestral_100_at_256']['s_per_image']:.2f} s/image; "
         f"DPM-Solver++ 20 steps {s['dpmsolver++_20_at_256']['s_per_image']:.2f} s/image"],
        ["sampling at 512", f"{s['euler_ancestral_100_at_512']['s_per_image']:.2f} s/image and "
                            f"{s['dpmsolver++_20_at_512']['s_per_image']:.2f} s/image"],
        ["the CPU default on the same card (`default_preset`), steps/s",
         f"GenDeg {d['gendeg_no']['steps_per_s']:.1f} fp32, {d['gendeg_bf16']['steps_per_s']:.1f} bf16; "
         f"NAFNet {d['nafnet_no']['steps_per_s']:.1f} and {d['nafnet_bf16']['steps_per_s']:.1f}"],
        ["GPU vs CPU, same trained model (`gpu_vs_cpu_max_abs_difference`)",
         f"at most {sci(diff['gendeg_dpmsolver_10_steps'])} (GenDeg sample), {sci(diff['nafnet_restore'])} "
         "(restoration), on a [0, 1] scale"],
    ])


# ---------------------------------------------------------------- README.md


@table("readme_headline", "reports/summary.json", "reports/metrics.json")
def readme_headline(s, m):
    ex, gd = "nafnet-existing", "nafnet-gends"
    psnr, gain, mm = s["mean_ood_psnr"], s["mean_ood_psnr_gain"], s["mean_ood_mean_matched_gain"]
    return (["default run, NAFNet, seed 0", "unrestored input", "existing", "GenDS"], [
        ["mean OOD PSNR (built-in)", f"{num(s['mean_ood_input_psnr'])} dB", f"{num(psnr[ex])} dB ({sg(gain[ex])})",
         f"{num(psnr[gd])} dB ({sg(gain[gd])})"],
        ["GenDS − existing, mean OOD PSNR (`gain_db`)", "", "", f"{sg(s['gain_db']['nafnet'])} dB"],
        ["mean-matched OOD gain over the input (structure only)", "0", f"{sg(mm[ex])} dB", f"{sg(mm[gd])} dB"],
        ["in-distribution PSNR", f"{num(s['in_distribution_input_psnr'])} dB", f"{num(s['in_distribution_psnr'][ex])} dB",
         f"{num(s['in_distribution_psnr'][gd])} dB"],
        ["made on (`made_on`)", m["made_on"], "", ""],
    ])


@table("readme_studies", "ood_default.json", "ood_photos.json", "ood_default_steps1800.json",
       "ood_default_crop64.json", "ood_photos_crop64.json", "ood_default_oracle.json", "abstention_bound.json",
       "intensity_control.json")
def readme_studies(d, photos, long, crop, photos_crop, orc, ab, ic):
    ex, gd = training_set(d, "existing"), training_set(d, "gends")
    diff = lambda r: r["restoration"]["gends_vs_existing"]
    ph = lambda r, name: photo(r, name)
    pab = lambda bench, name: sg(ab["benchmarks"][bench]["labels"][name]["over_seeds"]["oracle_blend"]["mean_matched_psnr"]["mean"])
    c1800 = comparison(photos, "gends-1800", "existing-1800")
    ccrop = comparison(photos_crop, "gends-crop64", "existing-crop64")
    o = orc["restoration"]["oracle_vs_existing"]
    mean_r = sum(ic[x]["pearson_r"] for x in DEGRADATIONS) / len(DEGRADATIONS)
    return (["five-seed studies (mean ± std)", "unrestored input", "existing", "GenDS", "source"], [
        ["mean OOD PSNR (built-in)", f"{num(d['mean_ood_input_psnr'])} dB",
         f"{num(d['mean_ood_psnr']['existing']['mean'])} dB ({pm(ex['ood_gain_db'])})",
         f"{num(d['mean_ood_psnr']['gends']['mean'])} dB ({pm(gd['ood_gain_db'])})", "`ood_default.json`"],
        ["mean-matched OOD gain over the input (structure only)", "0", f"{pm(ex['ood_mean_matched_gain_db'])} dB",
         f"{pm(gd['ood_mean_matched_gain_db'])} dB", "`ood_default.json`"],
        ["GenDS − existing, OOD / in distribution", "", "",
         f"{pm(diff(d)['ood_psnr'])} / {pm(diff(d)['in_distribution_psnr'])} dB", "`ood_default.json`"],
                ["in-distribution PSNR", f"{num(d['in_distribution_psnr']['existing']['mean'] - ex['in_distribution_gain_db']['mean'])} dB",
         f"{num(d['in_distribution_psnr']['existing']['mean'])} dB", f"{num(d['in_distribution_psnr']['gends']['mean'])} dB",
         "`ood_default.json`"],
        ["real photographs, 128 px (frozen benchmark)", f"{num(photos['input']['mean']['psnr'])} dB",
         f"{pm(ph(photos, 'existing')['psnr'], sign=False)} dB", f"{pm(ph(photos, 'gends')['psnr'], sign=False)} dB",
         "`ood_photos.json`"],
        ["GenDS − existing with restorers trained 3× longer, built-in OOD / structure", "", "",
         f"{pm(diff(long)['ood_psnr'])} / {pm(diff(long)['ood_mean_matched_psnr'])} dB ({diff(long)['ood_psnr']['verdict']})",
         "`ood_default_steps1800.json`"],
        ["the same restorers on the real photographs, PSNR", f"{num(photos['input']['mean']['psnr'])} dB",
         f"{pm(ph(photos, 'existing-1800')['psnr'], sign=False)} dB",
         f"{pm(ph(photos, 'gends-1800')['psnr'], sign=False)} dB ({pm(c1800['psnr'])})", "`ood_photos.json`"],
        ["GenDS − existing with whole-image training crops, built-in OOD / photographs", "", "",
         f"{verdict(diff(crop)['ood_psnr'])} / {pm(ccrop['psnr'])} dB", "`ood_default_crop64.json`, `ood_photos_crop64.json`"],
        ["oracle (physics-rendered pairs on GenDS's scenes) − existing, OOD / structure", "", "",
         f"{pm(o['ood_psnr'])} / {pm(o['ood_mean_matched_psnr'])} dB", "`ood_default_oracle.json`"],
        ["structure if the restorer abstained: the target-knowing blend with the input, mean-matched gain, "
         "built-in / photographs (seed 0)", "0", f"{pab('builtin', 'existing')} / {pab('photos', 'existing')} dB",
         f"{pab('builtin', 'gends')} / {pab('photos', 'gends')} dB", "`abstention_bound.json`"],
        ["GenDeg intensity control: mean r(requested, realised μ) / type accuracy", "", "",
         f"{num(mean_r)} / {num(ic['summary']['mean_type_accuracy'])} (physics oracle "
         f"{num(ic['summary']['mean_oracle_type_accuracy'])})", "`intensity_control.json`"],
    ])


# ---------------------------------------------------------------- docs/design.md


@table("gendeg_parametrisation", "gendeg_parametrisation.json")
def gendeg_parametrisation(g):
    v = g["variants"]
    def row(label, name, i=0, same=False):
        ic = v[name]["intensity_control"][i]
        left = ["(same model)", ""] if same else [num(v[name]["residual_hf"], 3), num(v[name]["l1_to_real"], 3)]
        return [label, *left, num(ic["mean_pearson_r"]), num(ic["mean_mu_ratio"]), num(ic["mean_kid"])]
    return (["variant (`variants.<name>`)", "noise left in the output¹", "L1 to the real degraded image",
             "mean r(μ)", "realised / requested μ", "KID²"], [
        row("v-prediction, pixel_unshuffle(4), 5 steps (`v_prediction_factor4`, the earlier default)", "v_prediction_factor4"),
        row("x0, pixel_unshuffle(4), 5 steps (`sample_factor4`)", "sample_factor4"),
        row("x0, pixel_unshuffle(2), 5 steps (`sample_factor2`)", "sample_factor2"),
        row("**x0, pixel_unshuffle(2), 10 steps (default)**", "sample_factor2", 1, True),
        row("v-prediction, pixel_unshuffle(2), 10 steps (`v_prediction_factor2`)", "v_prediction_factor2",
            len(v["v_prediction_factor2"]["intensity_control"]) - 1),
    ])


@table("gendeg_tuning", "archive/gendeg_tuning.json")
def gendeg_tuning(t):
    s = t["summary"]
    return (["variant", "r(requested, realised μ)", "realised / requested μ"], [
        [label, num(s[name]["sT=3.0"]["r_mu"], 3), num(s[name]["sT=3.0"]["mu_ratio_geomean"])]
        for label, name in [("**time_embedding + smoothed + residual ×3**", "default"),
                            ("cross_attention", "cross_attention"), ("one-hot bins", "onehot"),
                            ("no residual", "no_residual"), ("residual ×1", "residual_x1")]])


@table("snr_weighting", "intensity_control.json", "gendeg_parametrisation_snr.json")
def snr_weighting(ic, snr):
    def cells(per):
        return [f"{num(per[d]['type_accuracy'])} / {num(per[d]['mu_ratio'])}" for d in DEGRADATIONS]
    rows = [["plain x0 loss (default; `intensity_control.json`)", *cells(ic), num(ic["summary"]["mean_type_accuracy"])]]
    for label, name in [("SNR clamped to [1, 5]", "sample_factor2_snr1to5"), ("Min-SNR, γ = 5", "sample_factor2_minsnr5"),
                        ("Min-SNR, γ = 1", "sample_factor2_minsnr1")]:
        run = snr["variants"][name]["intensity_control"][0]
        rows.append([label, *cells(run["per_degradation"]), num(run["mean_type_accuracy"])])
    return (["", *(deg(d) for d in DEGRADATIONS), "mean type"], rows)


@table("intensity_calibration", "intensity_control.json", "intensity_control_calibrated.json")
def intensity_calibration(off, on):
    arrow = lambda key: [f"{num(off[d][key])} → {num(on[d][key])}" for d in DEGRADATIONS]
    return (["", *(deg(d) for d in DEGRADATIONS)], [
        ["realised / requested μ", *arrow("mu_ratio")],
        ["r(requested, realised μ)", *arrow("pearson_r")],
        ["type accuracy", *arrow("type_accuracy")],
    ])


# ---------------------------------------------------------------- command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 naming each stale block; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_blocks()
        for entry in stale:
            print(f"stale: {entry} (run python docs/tables.py)", file=sys.stderr)
        return 1 if stale else 0
    for doc in DOCS:
        text = doc.read_text()
        new, stale = update(text)
        if new != text:
            doc.write_text(new)
            print(f"{doc.relative_to(ROOT)}: rewrote {', '.join(stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
