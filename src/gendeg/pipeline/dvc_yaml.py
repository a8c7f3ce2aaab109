"""dvc.yaml, written from the stage table (gendeg.pipeline.stage_table), never by hand.

`python -m gendeg.pipeline.dvc_yaml write` rewrites it; `check` exits 1 when the committed file is
not what the table makes (tests/unit/test_stage_table.py runs it).  The file keeps DVC's own
templating (`foreach`, `matrix`, `${...}` from params.yaml), so `dvc repro` and `dvc exp run -S`
expand the jobs params.yaml asks for without regenerating it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from gendeg import PROJECT_ROOT
from gendeg.pipeline.dvc_views import DVC_METRICS, DVC_PLOTS
from gendeg.pipeline.stage_table import AXES, MAPPING_AXES, STAGES, Stage, render

DVC_YAML = PROJECT_ROOT / "dvc.yaml"
SCHEMA = PROJECT_ROOT / "workflow" / "schemas" / "params.schema.yaml"
HEADER = """\
# GENERATED from src/gendeg/pipeline/stage_table.py by `python -m gendeg.pipeline.dvc_yaml write`:
# edit the table, not this file (CI fails when it is stale).  The same stages as the Snakefile's
# rules; each reads resolved_params/<stage>.json, which `resolve_params` rewrites only when that
# stage's parameters (preset applied) change.
"""


def _dvc_field(stage: Stage):
    """How a template field reads in this stage's DVC entry: `${item}`/`${key}` (foreach), `${item.<axis>}` (matrix)."""
    single = len(stage.axes) == 1

    def wildcard(axis: str) -> str:
        if single:
            return "${key}" if axis in MAPPING_AXES else "${item}"
        return "${item.%s}" % axis

    def lookup(axis: str) -> str:
        if not (single and axis in MAPPING_AXES):
            raise ValueError(f"stage {stage.name}: {{{axis}.value}} needs {axis} as the stage's only axis (DVC foreach)")
        return "${item}"

    return lambda template: render(template, wildcard, lookup, lambda key: "${%s}" % key)


def _folded(words: list[str], indent: str) -> str:
    """A `>-` block: the words joined by spaces, broken between argument pairs near 110 columns."""
    lines, line = [], ""
    for word in words:
        if line and len(indent) + len(line) + len(word) > 110 and not word.startswith("${") and (
                word.startswith("--") or not line.split()[-1].startswith("--")):
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return ">-\n" + "".join(f"{indent}{text}\n" for text in lines + [line])


def _items(values: list, indent: str) -> str:
    out = ""
    for value in values:
        if isinstance(value, dict):
            (path, options), = value.items()
            out += f"{indent}- {path}:\n" + "".join(f"{indent}    {k}: {str(v).lower()}\n" for k, v in options.items())
        else:
            out += f"{indent}- {value}\n"
    return out


def stage_entry(stage: Stage) -> str:
    """One stage's dvc.yaml entry, as text (a folded command reads better than YAML's own wrapping)."""
    dvc = _dvc_field(stage)
    head = f"gendeg --log logs/{stage.stem}.log --benchmark logs/benchmarks/{stage.stem}.tsv"
    deps = [dvc(path) for path in stage.inputs().values()] + [path for path, _ in stage.dvc_only_deps]
    outs = [{dvc(path): stage.dvc_outs[name]} if name in stage.dvc_outs else dvc(path)
            for name, path in stage.outputs().items()]
    text = f"  {stage.name}:\n"
    if len(stage.axes) == 1:
        text += f"    foreach: ${{{AXES[stage.axes[0]]}}}\n    do:\n"
    elif stage.axes:
        text += "    matrix:\n" + "".join(f"      {axis}: ${{{AXES[axis]}}}\n" for axis in stage.axes)
    pad = "      " if len(stage.axes) == 1 else "    "
    text += f"{pad}cmd: " + _folded([dvc(head)], pad + "  ").rstrip("\n") + "\n"
    text += _folded(dvc(stage.arguments()).split(), pad + "  ").removeprefix(">-\n")
    text += f"{pad}deps:\n" + _items(deps, pad + "  ")
    text += f"{pad}outs:\n" + _items(outs, pad + "  ")
    return text


RESOLVE_PARAMS = """\
  resolve_params:
    cmd: gendeg resolve-params --params params.yaml --out resolved_params
    params:  # every top-level section of params.yaml (the schema's)
{params}    outs:
      - resolved_params:  # cached: `dvc pull` in a fresh clone brings the configs the outputs were made from
          persist: true
"""


def _comment(text: str) -> str:
    import textwrap

    return "".join(f"  # {line}\n" for line in textwrap.wrap(text, 100))


def render_dvc_yaml() -> str:
    """The whole dvc.yaml text."""
    sections = list(yaml.safe_load(SCHEMA.read_text())["properties"])
    parts = [HEADER, "stages:\n", RESOLVE_PARAMS.format(params="".join(f"      - {s}\n" for s in sections))]
    for stage in STAGES:
        parts.append("\n" + (_comment(stage.comment) if stage.comment else "") + stage_entry(stage))
    parts.append("\n# What `dvc metrics show|diff`, `dvc exp show` and `dvc plots show|diff` display "
                 "(gendeg.pipeline.dvc_views).\n")
    parts.append(yaml.safe_dump({"metrics": DVC_METRICS, "plots": DVC_PLOTS}, sort_keys=False, width=110))
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    action = (argv if argv is not None else sys.argv[1:] or ["check"])[0]
    text = render_dvc_yaml()
    if action == "write":
        from gendeg.runtime.atomic import write_text

        write_text(text, DVC_YAML)
        print(f"wrote {DVC_YAML}")
        return 0
    if action == "check":
        if DVC_YAML.read_text() != text:
            print(f"{DVC_YAML} is stale: run `python -m gendeg.pipeline.dvc_yaml write` (it is made from "
                  "src/gendeg/pipeline/stage_table.py)", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m gendeg.pipeline.dvc_yaml write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
