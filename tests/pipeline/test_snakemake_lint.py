"""`snakemake --lint` reports only the lints docs/snakemake-lint.md justifies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

JUSTIFIED = {'Absolute path "/proc/driver/nvidia/gpus"', "Mixed rules and functions in same snakefile"}


def test_only_the_documented_lints_remain():
    snakemake = Path(sys.executable).parent / "snakemake"
    done = subprocess.run([str(snakemake), "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lints = {re.sub(r"( in line \d+)?[.:]*$", "", m).strip()
             for m in re.findall(r"(?m)^    \* (.+)$", done.stdout + done.stderr)}
    assert lints == JUSTIFIED, done.stdout[-3000:] + done.stderr[-2000:]
    page = (ROOT / "docs" / "snakemake-lint.md").read_text()
    assert all(lint in page for lint in JUSTIFIED)
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):  # every rule names the environment file
        text = smk.read_text()
        assert text.count('conda:\n') >= len(re.findall(r"(?m)^\s*rule \w+:", text)), smk.name
    assert (ROOT / "envs" / "gendeg.yaml").is_file()
