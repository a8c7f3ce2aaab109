"""params.yaml -> validated, preset-resolved configuration, and one resolved file per stage.

Why resolved files: Snakemake and DVC must agree on what a parameter change invalidates.
Each stage reads `resolved_params/<stage>.json` (its own sections, preset applied) and both
orchestrators declare that file as a dependency.  The file is rewritten only when its
content changes, so editing a restorer parameter touches only `train_restorer.json` and
re-runs only the restorer, evaluation and report stages, under either tool.
"""

from __future__ import annotations

import copy
import errno
import json
import math
import os
from pathlib import Path

import jsonschema
import yaml

from gendeg import PROJECT_ROOT
from gendeg.pipeline.preset_shadow import normalize_round_trip, shadow_error
from gendeg.pipeline.stage_table import STAGE_SECTIONS  # which params.yaml sections each stage's config holds
from gendeg.runtime.atomic import atomic_path

SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "params.schema.yaml"
RESOLVED_DIR = "resolved_params"

class ConfigError(ValueError):
    """params.yaml is malformed; the message names the key and the value."""


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively overlay `override` on a copy of `base` (lists and scalars replace)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def validate(params: dict, source: str) -> None:
    """Raise ConfigError listing every schema violation, each with its dotted key."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  {_key_path(e)}: {e.message}" for e in errors]
        raise ConfigError(f"{source} is invalid:\n" + "\n".join(lines))


def resolve(params: dict, source: str = "params.yaml") -> dict:
    """Apply the selected preset to the base sections and validate the result."""
    params = normalize_round_trip(copy.deepcopy(params))  # `dvc exp run -S` writes "no" back unquoted
    validate(params, source)
    preset = params["preset"]
    presets = params.get("presets", {})
    if preset not in presets:
        raise ConfigError(f"{source}: preset: {preset!r} is not defined under presets: (have {sorted(presets)})")
    for name, overrides in presets.items():
        data = overrides.get("data") if isinstance(overrides, dict) else None
        if isinstance(data, dict) and isinstance(data.get("user"), dict) and "folder" in data["user"]:
            raise ConfigError(f"{source}: presets.{name}.data.user.folder: set data.user.folder at the top level of "
                              f"params.yaml instead; DVC's prepare stage reads it from there, before any preset applies")
        synthesis = overrides.get("synthesis") if isinstance(overrides, dict) else None
        if isinstance(synthesis, dict) and "shards" in synthesis:
            raise ConfigError(f"{source}: presets.{name}.synthesis.shards: set synthesis.shards at the top level of "
                              f"params.yaml instead; DVC makes one synthesize job per shard from there, before any "
                              f"preset applies")
    base = {k: v for k, v in params.items() if k != "presets"}
    resolved = deep_merge(base, presets[preset] or {})
    validate({**resolved, "presets": presets}, f"{source} (preset {preset!r} applied)")
    check_jobs(resolved, f"{source} (preset {preset!r} applied)")
    return resolved


def check_jobs(resolved: dict, source: str) -> None:
    """Cross-key rules the schema cannot state: every job params.yaml asks for can be built.

    Checked here, before any job starts, rather than when a restorer job fails an hour in.
    """
    models = resolved["restorer"]["model"]
    missing = [arch for arch in resolved["architectures"] if arch not in models]
    if missing:
        raise ConfigError(f"{source}: architectures: {missing} have no settings under restorer.model "
                          f"(have {sorted(models)}); add e.g. `{missing[0]}: {{width: 16}}` there")
    named = [arch for arch, settings in models.items() if "arch" in settings]
    if named:
        raise ConfigError(f"{source}: restorer.model.{named[0]}.arch: remove it; each job's architecture comes from "
                          f"`architectures:` and its settings from restorer.model.<arch>")
    most = resolved["synthesis"]["per_degradation"]
    too_many = [n for n in resolved["scaling_counts"] if n > most]
    if too_many:
        raise ConfigError(f"{source}: scaling_counts: {too_many} exceed synthesis.per_degradation ({most}): "
                          f"such a restorer would train on the same pairs as {most}")
    synthesis = resolved["synthesis"]
    shards = synthesis["shards"]
    if shards != list(range(len(shards))):
        raise ConfigError(f"{source}: synthesis.shards: {shards} must number the shards 0, 1, ..., N-1 "
                          f"(e.g. {list(range(len(shards)))})")
    batches = math.ceil(most / synthesis["batch_size"])
    if len(shards) > batches:
        raise ConfigError(f"{source}: synthesis.shards: {len(shards)} shards, but {most} samples per degradation in "
                          f"batches of {synthesis['batch_size']} make {batches} batch(es); a shard is whole batches")
    train = resolved["gendeg"]["train"]
    floor, gamma = train.get("snr_floor"), train.get("snr_gamma")
    if floor is not None and gamma is not None and floor > gamma:
        raise ConfigError(f"{source}: gendeg.train.snr_floor ({floor}) exceeds gendeg.train.snr_gamma ({gamma}): "
                          f"the loss weight is SNR clamped to [snr_floor, snr_gamma]")


def check_user_data(resolved: dict, source: str) -> None:
    """With data.source: user, the datasets must cover what the pipeline needs, or a job fails hours in:
    a train dataset per degradation (GenDeg, its intensity statistics, synthesis) and a test dataset
    (in-distribution evaluation).  A GenDS manifest declares both per row, so it is checked by `prepare`.
    data.user.folder, a dependency of DVC's prepare stage, must exist (built-in data too) and hold every
    path an entry names (`prepare` checks the files a manifest lists).  A pipeline pre-flight
    (gendeg.pipeline.orchestration.preflight), not part of load_params: the shipped `paper` preset
    resolves (for inspection and tests) though it cannot run until data.user is filled."""
    folder = resolved["data"]["user"]["folder"]
    if not Path(folder).expanduser().is_dir():
        raise ConfigError(f"{source}: data.user.folder: {folder} is not a folder; DVC's prepare stage depends on it "
                          f"(create it, or point it at the folder that holds your data)")
    check_links(resolved["data"]["user"], source)  # DVC hashes the folder whatever the source
    if resolved["data"]["source"] != "user":
        return
    paired = [entry for entry in (resolved["data"]["user"].get("paired") or []) if isinstance(entry, dict)]
    if not paired:
        raise ConfigError(f"{source}: data.source is user but data.user.paired is empty: describe your paired datasets "
                          f"there (one per degradation in degradations: {resolved['degradations']}, and a split: test one)")
    if not any("gends_manifest" in entry for entry in paired):
        trained = {entry.get("degradation") for entry in paired if entry.get("split", "train") == "train"}
        missing = [d for d in resolved["degradations"] if d not in trained]
        if missing:
            raise ConfigError(f"{source}: data.user.paired has no split: train dataset for degradation(s) {missing} "
                              f"of degradations: {resolved['degradations']}; add one each, or drop them from degradations")
        if not any(entry.get("split") == "test" for entry in paired):
            raise ConfigError(f"{source}: data.user.paired has no dataset with split: test; evaluation needs one "
                              f"(e.g. a held-out folder of any degradation with split: test)")
    check_user_paths(resolved["data"]["user"], source)
    check_user_entries(resolved["data"]["user"], source)


def check_user_entries(user: dict, source: str) -> None:
    """What `prepare` would refuse in each entry (a folder or manifest that does not exist, an unknown
    degradation, an unknown key), found before any job: the ingest parsers' own checks."""
    from gendeg.data.ingest.specs import parse_clean, parse_paired

    problems = []
    for section in ("paired", "ood", "clean"):
        for index, entry in enumerate(user.get(section) or []):
            where = f"data.user.{section}[{index}]"
            if section == "clean":
                _, found = parse_clean(entry, where)
            else:
                _, found = parse_paired(entry, where, ood=section == "ood")
            problems += [str(problem) for problem in found]
    if problems:
        raise ConfigError(f"{source}: data.user entries that `prepare` would refuse:\n  " + "\n  ".join(problems))


def _bad_links(folder: Path) -> list[str]:
    """Symbolic links under `folder` that lead nowhere (a broken or looping link): neither tool can read them."""
    bad, stack = [], [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError as error:
            bad.append(f"{error.filename}: {error.strerror}")
            continue
        for entry in entries:
            if entry.is_symlink() and not os.path.exists(entry.path):
                target = os.readlink(entry.path)
                try:
                    os.stat(entry.path)
                    why = "unreadable"
                except OSError as error:
                    why = "loops" if error.errno == errno.ELOOP else "is broken"
                bad.append(f"{entry.path} -> {target} ({why})")
            elif entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return sorted(bad)


def check_links(user: dict, source: str) -> None:
    """Every broken or looping symbolic link under data.user.folder, named before any work: a dry run
    used to say "Nothing to be done" over them and DVC to fail after `prepare` had run."""
    folder = Path(str(user["folder"])).expanduser()
    bad = _bad_links(folder) if folder.is_dir() else []
    if bad:
        raise ConfigError(f"{source}: data.user.folder ({user['folder']}) holds symbolic links that lead nowhere; "
                          f"remove or repair them:\n  " + "\n  ".join(bad))


def check_user_paths(user: dict, source: str) -> None:
    """Every folder and manifest an entry names lies under data.user.folder, where DVC sees it change."""
    from gendeg.data.ingest.fingerprint import PATH_KEYS, outside_folder

    outside = [f"data.user.{section}[{index}].{key}: {entry[key]}"
               for section in ("paired", "ood", "clean")
               for index, entry in enumerate(user.get(section) or []) if isinstance(entry, dict)
               for key in PATH_KEYS if key in entry and outside_folder(str(entry[key]), user["folder"])]
    if outside:
        raise ConfigError(f"{source}: outside data.user.folder ({user['folder']}), so a `dvc repro` would not see "
                          f"them change:\n  " + "\n  ".join(outside) + "\nMove them under it (not through a "
                          "symlinked sub-folder), or set data.user.folder to a folder that holds them all")


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"parameter file not found: {path}")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(params).__name__}")
    return resolve(params, str(path))


def stage_config(resolved: dict, stage: str) -> dict:
    """The sections one stage reads (a copy: callers may change it freely), with its torch thread count."""
    threads = resolved["threads"].get(stage, resolved["threads"]["default"])
    return copy.deepcopy({"preset": resolved["preset"], "threads": threads,
                          **{key: resolved[key] for key in STAGE_SECTIONS[stage]}})


# Not a stage config: the fingerprint of the user's data files, an input of `prepare` in both
# orchestrators, so changing, adding or removing a user file re-runs it (gendeg.data.ingest.fingerprint).
USER_DATA = "user_data"


def resolved_texts(resolved: dict) -> dict[str, str]:
    """Name -> the exact text of resolved_params/<name>.json (compared before anything is written)."""
    from gendeg.data.ingest.fingerprint import user_data_fingerprint

    texts = {stage: json.dumps(stage_config(resolved, stage), indent=2, sort_keys=True) + "\n"
             for stage in STAGE_SECTIONS}
    texts[USER_DATA] = json.dumps(user_data_fingerprint(resolved["data"]), indent=1, sort_keys=True) + "\n"
    return texts


def write_resolved(params_path: str | Path = "params.yaml", out_dir: str | Path = RESOLVED_DIR) -> list[Path]:
    """Write resolved_params/<stage>.json for every stage; untouched when unchanged."""
    resolved = load_params(params_path)
    refused = shadow_error(params_path)  # under `dvc exp run` it also puts the refused keys back
    if refused:
        raise ConfigError(refused)
    written = []
    for stage, text in resolved_texts(resolved).items():
        path = Path(out_dir) / f"{stage}.json"
        if not path.exists() or path.read_text() != text:
            with atomic_path(path) as tmp:
                tmp.write_text(text)
            written.append(path)
    return written


def read_stage_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"resolved stage config not found: {path} (run `gendeg resolve-params`)")
    return json.loads(path.read_text())


# The DAG-shaping keys of the comparisons `gendeg comparison` switches between (README:
# "The full comparison"; `seeds`: every restorer job over five seeds, the headline's spread).  Presets may not set these keys (DVC reads them before any preset
# applies), so the switch rewrites them in params.yaml itself, where `git diff` shows it.
COMPARISONS: dict[str, dict] = {
    "default": {"architectures": ["nafnet"], "training_sets": {"existing": "prepared", "gends": "gends"},
                "scaling_counts": []},
    "full": {"architectures": ["nafnet", "promptir", "swin"],
             "training_sets": {"existing": "prepared", "gends": "gends", "gendeg": "gends", "oracle": "gends"},
             "scaling_counts": [10, 20, 40, 80]},
    "seeds": {"seeds": [0, 1, 2, 3, 4]},
    "one-seed": {"seeds": [0]},
}


def _top_level_block(lines: list[str], key: str) -> tuple[int, int]:
    """[start, end) of `key:` at column 0 and the lines under it (indented, or `- ` list items)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
    if len(starts) != 1:
        raise ConfigError(f"params.yaml: expected one top-level `{key}:` line, found {len(starts)}")
    end = starts[0] + 1
    while end < len(lines) and (lines[end][:1] in (" ", "\t") or lines[end].startswith("- ")) and lines[end].strip():
        end += 1
    return starts[0], end


def _render(key: str, value, head: str, comments: list[str]) -> list[str]:
    """Block style, as `dvc exp run -S` writes params.yaml back (an empty list stays `[]`); the key's
    line and the comment lines under it stay as written, so switching back restores the file."""
    comment = "  # " + head.split("#", 1)[1].strip() if "#" in head else ""
    block_head = head if head.split("#", 1)[0].strip() == f"{key}:" else f"{key}:{comment}"
    if isinstance(value, dict):
        return [block_head, *comments] + [f"  {k}: {v}" for k, v in value.items()]
    if not value:
        return [f"{key}: []{comment}"]
    return [block_head, *comments] + [f"- {v}" for v in value]


def set_comparison(params_path: str | Path, name: str) -> list[str]:
    """Rewrite the DAG-shaping keys of comparison `name` (COMPARISONS) in params.yaml.

    Line-based, so every comment and every other key stays as written; the result is
    validated before it replaces the file.  Returns the keys that changed.
    """
    if name not in COMPARISONS:
        raise ConfigError(f"unknown comparison {name!r}; known: {sorted(COMPARISONS)}")
    path = Path(params_path)
    current = yaml.safe_load(path.read_text())
    lines = path.read_text().splitlines()
    changed = []
    for key, value in COMPARISONS[name].items():
        if current.get(key) == value:
            continue
        start, end = _top_level_block(lines, key)
        comments = [line for line in lines[start + 1:end] if line.lstrip().startswith("#")]
        lines[start:end] = _render(key, value, lines[start], comments)
        changed.append(key)
    text = "\n".join(lines) + "\n"
    resolve(yaml.safe_load(text), f"{path} (comparison {name!r})")
    if changed:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return changed
