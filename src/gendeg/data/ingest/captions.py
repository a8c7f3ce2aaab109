"""Captions and dataset phrases of a source's rows: the "<caption>, <phrase>" of the paper's prompt.

A row's caption comes from its manifest's `caption` column, else from the entry's `captions:`
file (CSV/Parquet with image_path, caption; paths relative to the file's folder, matched against
the pair's clean image first, then its degraded one), else it stays blank (the prepare stage's
BLIP-2 captioner fills blanks when data.user.captioner is set).  A dataset's `phrase:` goes to
every row of that dataset; a GenDS entry's `phrases:` to its existing pairs of each named
dataset (a generated pair was prompted with its own degradation's phrase).
"""

from __future__ import annotations

from pathlib import Path

from gendeg.data.ingest.problems import Problem
from gendeg.data.ingest.sources import SourceRows, _read_table, _resolve, _text
from gendeg.data.ingest.specs import GenDSSpec


def read_captions(path: Path, dataset: str, out: SourceRows) -> dict[str, str]:
    """{resolved image path: caption} of a captions file; a bad file is a fatal problem."""
    table = _read_table(path, ["image_path", "caption"], dataset, out)
    if table is None:
        return {}
    return {_resolve(path.parent, row["image_path"]): _text(row["caption"]) for row in table.to_dict("records")
            if _text(row["caption"])}


def add_captions_and_phrases(spec, out: SourceRows) -> None:
    """Fill the rows of one source in place (see the module docstring)."""
    if getattr(spec, "captions", None) is not None:
        captions = read_captions(spec.captions, spec.name, out)
        matched = 0
        for row in out.rows:
            found = captions.get(row["target_path"]) or captions.get(row["image_path"])
            matched += found is not None
            if found and not _text(row.get("caption")):
                row["caption"] = found
        if captions and not matched:
            out.fatal.append(Problem(str(spec.captions), spec.name,
                                     f"captions file names none of this dataset's {len(out.rows)} image(s); its "
                                     f"image_path values resolve against {spec.captions.parent}"))
    if isinstance(spec, GenDSSpec):
        phrases = dict(spec.phrases)
        for row in out.rows:
            if row.get("category") == "Real" and phrases.get(row["dataset"]):
                row["phrase"] = phrases[row["dataset"]]
    elif getattr(spec, "phrase", ""):
        for row in out.rows:
            row["phrase"] = spec.phrase
