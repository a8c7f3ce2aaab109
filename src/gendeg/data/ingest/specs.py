"""The `data.user` entries of params.yaml, checked up front and turned into typed specs.

Mistakes here (a typo in a key, a folder that does not exist, an unknown degradation, a
key_regex without a `key` group) are config problems: they are all collected, then raised
together, before a single image is decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gendeg import DEGRADATIONS
from gendeg.data.ingest.problems import Problem

PAIRED_SPLITS = ("train", "test")
WHOLE_STEM = re.compile(r"^(?P<key>.*)$")

# captions: a CSV/Parquet (image_path, caption) of BLIP-2-style captions of the dataset's images;
# phrase: the dataset's own prompt phrase (official: CSD "in snowy and hazy conditions").
_COMMON_KEYS = {"name", "degradation", "split", "captions", "phrase"}
_FOLDER_KEYS = {"degraded_dir", "clean_dir", "key_regex", "clean_key_regex", "recursive"}
_MANIFEST_KEYS = {"manifest", "root"}
_GENDS_KEYS = {"name", "gends_manifest", "root", "captions", "phrases"}
_CLEAN_KEYS = {"name", "dir", "recursive", "captions"}


@dataclass(frozen=True)
class PairedFolderSpec:
    """Degraded and clean images in two folders, paired by a key taken from each file name."""

    name: str
    degradation: str
    degraded_dir: Path
    clean_dir: Path
    split: str
    key_regex: re.Pattern
    clean_key_regex: re.Pattern
    recursive: bool = False
    captions: Path | None = None
    phrase: str = ""


@dataclass(frozen=True)
class PairedManifestSpec:
    """A CSV/Parquet table of (image_path, target_path) pairs for one dataset."""

    name: str
    degradation: str
    manifest: Path
    root: Path  # relative paths in the manifest are resolved against this folder
    split: str
    captions: Path | None = None
    phrase: str = ""


@dataclass(frozen=True)
class GenDSSpec:
    """The released GenDS manifest: many datasets, both splits, Real and Synthetic rows."""

    name: str
    manifest: Path
    root: Path
    captions: Path | None = None
    phrases: tuple[tuple[str, str], ...] = ()  # (dataset, phrase): its rows name many datasets


@dataclass(frozen=True)
class CleanFolderSpec:
    """A folder of clean images to synthesize degraded versions of."""

    name: str
    dir: Path
    recursive: bool = False
    captions: Path | None = None


PairedSpec = PairedFolderSpec | PairedManifestSpec | GenDSSpec


class _Checker:
    """Collects config problems for one entry so that every mistake is reported, not just the first."""

    def __init__(self, entry: Any, where: str):
        self.where = where
        self.problems: list[Problem] = []
        self.entry: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {}
        self.name = str(self.entry.get("name", "") or where)
        if not isinstance(entry, Mapping):
            self.fail(where, f"must be a mapping, got {type(entry).__name__} {entry!r}")

    def fail(self, path: str, reason: str) -> None:
        self.problems.append(Problem(str(path), self.name, reason))

    def unknown_keys(self, allowed: set[str]) -> None:
        extra = sorted(set(self.entry) - allowed)
        if extra:
            self.fail(self.where, f"unknown key(s) {extra}; allowed: {sorted(allowed)}")

    def required_str(self, key: str) -> str:
        value = self.entry.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(self.where, f"{key!r} is required and must be a non-empty string, got {value!r}")
            return ""
        return value

    def flag(self, key: str) -> bool:
        value = self.entry.get(key, False)
        if not isinstance(value, bool):
            self.fail(self.where, f"{key!r} must be true or false, got {value!r}")
            return False
        return value

    def existing(self, key: str, *, folder: bool) -> Path:
        text = self.required_str(key)
        if not text:
            return Path()
        path = Path(text).expanduser()
        kind = "folder" if folder else "file"
        if not (path.is_dir() if folder else path.is_file()):
            self.fail(str(path), f"{key} is not an existing {kind} ({self.where}.{key})")
        return path

    def degradation(self) -> str:
        value = self.required_str("degradation")
        if value and value not in DEGRADATIONS:
            self.fail(self.where, f"unknown degradation {value!r}; expected one of {list(DEGRADATIONS)}")
        return value

    def split(self) -> str:
        value = self.entry.get("split", "train")
        if value not in PAIRED_SPLITS:
            self.fail(self.where, f"split must be one of {list(PAIRED_SPLITS)}, got {value!r}")
        return str(value)

    def regex(self, key: str, default: re.Pattern) -> re.Pattern:
        text = self.entry.get(key)
        if text is None:
            return default
        try:
            pattern = re.compile(str(text))
        except re.error as error:
            self.fail(self.where, f"{key} {text!r} is not a valid regular expression: {error}")
            return default
        if "key" not in pattern.groupindex:
            self.fail(self.where, f"{key} {text!r} has no named group 'key', e.g. '^(?P<key>[^_]+)'")
        return pattern

    def captions(self) -> Path | None:
        return self.existing("captions", folder=False) if self.entry.get("captions") is not None else None

    def phrase(self) -> str:
        value = self.entry.get("phrase", "")
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(self.where, f"phrase must be text such as 'in snowy and hazy conditions', got {value!r}")
            return ""
        return value.strip()

    def phrases(self) -> tuple[tuple[str, str], ...]:
        value = self.entry.get("phrases") or {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self.fail(self.where, f"phrases must map dataset names to phrases, e.g. "
                                  f"{{CSD: 'in snowy and hazy conditions'}}, got {value!r}")
            return ()
        return tuple((k, v.strip()) for k, v in value.items())

    def root(self, manifest: Path) -> Path:
        if "root" not in self.entry:
            return manifest.parent
        return self.existing("root", folder=True)


def parse_paired(entry: Any, where: str = "paired", *, ood: bool = False) -> tuple[PairedSpec | None, list[Problem]]:
    """One `paired:` (or `ood:`) entry -> its spec, or None plus the problems that stop it.

    The source is chosen by which key is present: `degraded_dir` + `clean_dir`, `manifest`,
    or `gends_manifest` (not allowed for OOD sets, whose split is always "ood").
    """
    check = _Checker(entry, where)
    if check.problems:
        return None, check.problems
    sources = [key for key in ("degraded_dir", "manifest", "gends_manifest") if key in check.entry]
    if "clean_dir" in check.entry and "degraded_dir" not in check.entry:
        sources.append("degraded_dir")
    if len(sources) != 1 or (ood and sources == ["gends_manifest"]):
        allowed = "'degraded_dir' + 'clean_dir' or 'manifest'" + ("" if ood else " or 'gends_manifest'")
        check.fail(where, f"give exactly one source: {allowed}; got {sorted(check.entry)}")
        return None, check.problems
    spec: PairedSpec
    if sources == ["gends_manifest"]:
        check.unknown_keys(_GENDS_KEYS)
        manifest = check.existing("gends_manifest", folder=False)
        spec = GenDSSpec(name=str(check.entry.get("name", "GenDS")), manifest=manifest, root=check.root(manifest),
                         captions=check.captions(), phrases=check.phrases())
    elif sources == ["manifest"]:
        check.unknown_keys(_COMMON_KEYS | _MANIFEST_KEYS)
        name, degradation = check.required_str("name"), check.degradation()
        manifest = check.existing("manifest", folder=False)
        split = "ood" if ood else check.split()
        spec = PairedManifestSpec(name, degradation, manifest, check.root(manifest), split, check.captions(),
                                  check.phrase())
    else:
        check.unknown_keys(_COMMON_KEYS | _FOLDER_KEYS)
        name, degradation = check.required_str("name"), check.degradation()
        degraded_dir = check.existing("degraded_dir", folder=True)
        clean_dir = check.existing("clean_dir", folder=True)
        key_regex = check.regex("key_regex", WHOLE_STEM)
        clean_key_regex = check.regex("clean_key_regex", key_regex)
        split = "ood" if ood else check.split()
        spec = PairedFolderSpec(name, degradation, degraded_dir, clean_dir, split, key_regex, clean_key_regex,
                                check.flag("recursive"), check.captions(), check.phrase())
    if ood and "split" in check.entry and check.entry["split"] != "ood":
        check.fail(where, f"OOD sets always have split 'ood'; remove split: {check.entry['split']!r}")
    return (None if check.problems else spec), check.problems


def parse_clean(entry: Any, where: str = "clean") -> tuple[CleanFolderSpec | None, list[Problem]]:
    """One `clean:` entry -> its spec, or None plus the problems that stop it."""
    check = _Checker(entry, where)
    if check.problems:
        return None, check.problems
    check.unknown_keys(_CLEAN_KEYS)
    spec = CleanFolderSpec(check.required_str("name"), check.existing("dir", folder=True), check.flag("recursive"),
                           check.captions())
    return (None if check.problems else spec), check.problems
