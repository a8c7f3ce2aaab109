"""params.yaml as DVC writes it back, and edits a preset would silently override.

Why: `dvc exp run -S key=value` rewrites params.yaml with a YAML 1.2 writer, which drops the
quotes of `"no"`; PyYAML (YAML 1.1, used by Snakemake and gendeg) then reads `no` as false.
And under `preset: smoke` a changed top-level value that the preset also sets never reaches
a stage, while `dvc params diff` shows the change.  The first is normalised here, the second
is found by comparing params.yaml with its committed version (git HEAD), the same baseline
`dvc params diff` and `dvc exp run` use.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

# Keys whose value "no" a YAML 1.2 round trip turns into the YAML 1.1 boolean false.
_NO_KEYS = ("mixed_precision",)


def normalize_round_trip(node):
    """Map `mixed_precision: false` (what PyYAML reads after DVC's rewrite) back to "no", in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NO_KEYS and value is False:
                node[key] = "no"
            else:
                normalize_round_trip(value)
    elif isinstance(node, list):
        for item in node:
            normalize_round_trip(item)
    return node


def committed_params(path: str | Path) -> dict | None:
    """params.yaml as committed at git HEAD; None outside a git repository or when not committed."""
    path = Path(path).resolve()
    try:
        done = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        committed = yaml.safe_load(done.stdout)
    except yaml.YAMLError:
        return None
    return normalize_round_trip(committed) if isinstance(committed, dict) else None


def _leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _leaves(value, dotted)
        else:
            yield dotted, value


def _get(node, dotted: str):
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def shadowed_edits(params: dict, committed: dict) -> list[str]:
    """One message per top-level value changed since `committed` that the active preset overrides."""
    return [message for _, message in _shadowed(params, committed)]


def _shadowed(params: dict, committed: dict) -> list[tuple[str, str]]:
    preset = params.get("preset")
    overrides = (params.get("presets") or {}).get(preset) or {}
    messages = []
    for key, preset_value in _leaves(overrides):
        now, before = _get(params, key), _get(committed, key)
        if now is KeyError or now == before or now == preset_value:
            continue
        messages.append((key, f"{key}: {now!r} (changed from {before if before is not KeyError else 'absent'!r} at git HEAD) "
                        f"is overridden by presets.{preset}.{key}: {preset_value!r} under `preset: {preset}`; "
                        f"set presets.{preset}.{key} instead (dvc exp run -S presets.{preset}.{key}=...) "
                        f"or select another preset"))
    return messages


def shadow_error(params_path: str | Path) -> str | None:
    """The refusal message for edits the active preset would override, or None when there are none.

    Under `dvc exp run` (DVC_EXP_NAME set) the refused keys are first put back to their committed
    values, so a refused `-S` leaves params.yaml as it was before the command; a user's own
    edit (snakemake, dvc repro) is only reported, never undone.
    """
    import os

    path = Path(params_path)
    committed = committed_params(path)
    if committed is None:
        return None
    shadowed = _shadowed(normalize_round_trip(yaml.safe_load(path.read_text())), committed)
    if not shadowed:
        return None
    message = f"{path}: an edit the preset overrides would be ignored:\n  " + "\n  ".join(m for _, m in shadowed)
    if os.environ.get("DVC_EXP_NAME"):
        restore_committed(path, [key for key, _ in shadowed])
        message += (f"\n{path}: the refused keys are back at their committed values (dvc exp run left the "
                    f"workspace as it was); nothing ran")
    return message


def restore_committed(path: Path, keys: list[str]) -> None:
    """Set each dotted key of params.yaml back to its git-HEAD node through DVC's own YAML writer.

    The committed node keeps its spelling (`2.0e-3` stays `2.0e-3`), and params.yaml is laid out
    as that writer writes it, so the file comes back byte for byte when only these keys changed.
    """
    from dvc.utils.serialize import modify_yaml, parse_yaml_for_update

    done = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.resolve().parent,
                          capture_output=True, text=True, timeout=30, check=True)
    before = parse_yaml_for_update(done.stdout, str(path))
    with modify_yaml(path) as current:
        for key in keys:
            *parents, leaf = key.split(".")
            source, target = before, current
            for part in parents:
                source, target = source.get(part, {}), target[part]
            if leaf in source:
                target[leaf] = source[leaf]
            else:  # absent at HEAD: the edit added it
                del target[leaf]
