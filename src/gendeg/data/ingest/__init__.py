"""Real-data ingestion: the user's paired datasets, clean-image pools and OOD test sets,
validated before any stage spends time on them.

The prepare stage calls `ingest_all(params["data"]["user"])` and gets gendeg.data.manifest
frames per split plus a list of problems.  Every problem names the file and what is
wrong; with `on_bad_input: fail` (default) one IngestError lists them all, with `skip`
the bad pairs are dropped and the problems returned for `write_problem_report`.
Config mistakes (unknown keys, missing folders or manifest columns, unknown degradation,
a key_regex without a `key` group, empty folders) stop the run in both modes, because
skipping them would silently drop whole datasets.  Files on disk are never modified.

A file is bad when it cannot be read or decoded (incl. truncation), is not 8-bit RGB
(grayscale, RGBA, palette, CMYK, 16-bit), has several frames, differs in size from its
pair, has no counterpart, or duplicates another file's content (OOD > test > train >
clean pools decides which copy stays).

`data.user` in params.yaml:

    folder: /data               # every file below lies under it (DVC's prepare stage hashes it);
                                # prepare stops on manifest rows outside it
    on_bad_input: fail          # fail | skip (drop bad pairs, report them)
    workers: 4                  # optional: threads that decode images (default: min(8, CPUs))
    captioner: /models/blip2    # optional: a saved BLIP-2 folder; prepare captions blank captions (blip2.py)
    paired:                     # existing paired datasets
      - name: RESIDE-OTS
        degradation: haze       # one of gendeg.DEGRADATIONS
        degraded_dir: /data/reside/hazy
        clean_dir: /data/reside/clear
        key_regex: '^(?P<key>[^_]+)'  # optional: file stem -> pair key (default: whole stem)
        # clean_key_regex: ...        # optional: a different regex for clean names
        # recursive: false            # optional: also look in sub-folders
        split: train            # train (default) | test
      - name: Rain13K
        degradation: rain
        manifest: /data/rain13k.csv   # CSV or Parquet with image_path (degraded), target_path (clean)
        # root: /data/rain13k         # optional: base of relative paths (default: the manifest's folder)
        # captions: /data/rain13k_captions.csv  # optional, any entry: image_path, caption (captions.py)
        # phrase: in rainy and hazy conditions  # optional: this dataset's own prompt phrase
      - name: GenDS
        gends_manifest: /data/gends/manifest.csv  # released GenDS manifest; its dataset,
                                                  # degradation ("motion blur", "low-light", ...)
                                                  # and split columns are used per row, as the
                                                  # dataset card lays them out (sources._gends_row)
        phrases: {CSD: in snowy and hazy conditions}  # optional: per dataset of the manifest
    clean:                      # extra clean images to synthesize from
      - {name: DIV2K, dir: /data/div2k}
    ood:                        # OOD test sets (split "ood"), paired folders or a manifest
      - {name: O-HAZE, degradation: haze, degraded_dir: /data/ohaze/hazy, clean_dir: /data/ohaze/GT,
         key_regex: '^(?P<key>\\d+)'}
"""

from gendeg.data.ingest.collect import IngestResult, ingest_all, ingest_clean_folder, ingest_ood, ingest_paired
from gendeg.data.ingest.problems import IngestError, Problem, write_problem_report
from gendeg.data.ingest.sources import canonical_degradation
from gendeg.data.ingest.validation import IMAGE_EXTENSIONS

__all__ = [
    "IMAGE_EXTENSIONS",
    "IngestError",
    "IngestResult",
    "Problem",
    "canonical_degradation",
    "ingest_all",
    "ingest_clean_folder",
    "ingest_ood",
    "ingest_paired",
    "write_problem_report",
]
