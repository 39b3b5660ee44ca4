"""Your own data listed in a CSV or JSON-lines manifest, one row per clip.

- Required columns: ``path`` (absolute, or relative to the manifest's folder) and ``label`` (an emotion
  in any known spelling; map others with ``label_map``).
- Optional columns: ``speaker``, ``gender`` (male/female/M/F), ``split`` (e.g. train/validation/test,
  used by :func:`ser_hf.splits.predefined_split`). Any other column is kept as a string column.
- Pass the manifest file as ``data_dir`` (``--data-dir my_manifest.csv``) or a folder holding
  ``manifest.csv`` / ``manifest.jsonl``.
- Licence and citation: those of your data.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, Problem, normalize_gender
from ser_hf.corpora.folder import raw_label_to_emotion
from ser_hf.errors import CorpusError

REQUIRED = ("path", "label")
KNOWN = (*REQUIRED, "speaker", "gender", "split")


def find_manifest(data_dir: Path) -> Path:
    """The manifest file itself, or ``manifest.csv``/``manifest.jsonl`` inside a folder."""
    if data_dir.is_file():
        return data_dir
    for name in ("manifest.csv", "manifest.jsonl", "manifest.json"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise CorpusError(
        f"No manifest in {str(data_dir)!r}: expected the manifest file itself or a folder holding manifest.csv "
        f"or manifest.jsonl (columns: path, label, optional speaker, gender, split)."
    )


def read_rows(manifest: Path) -> list[dict[str, str]]:
    """Rows of a CSV (``.csv``/``.tsv``) or JSON-lines manifest as dictionaries of strings."""
    if manifest.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(manifest.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append({k: "" if v is None else str(v) for k, v in json.loads(line).items()})
                except (json.JSONDecodeError, AttributeError) as err:
                    raise CorpusError(f"{manifest}: line {number} is not a JSON object ({err}).") from err
        return rows
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t" if manifest.suffix.lower() == ".tsv" else ","))


def list_clips(root: Path, label_map: Mapping[str, str] | None = None) -> Iterator[Clip | Problem]:
    manifest = find_manifest(root)
    rows = read_rows(manifest)
    columns = set(rows[0]) if rows else set()
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise CorpusError(
            f"Manifest {str(manifest)!r} lacks column(s) {missing}; found {sorted(columns)}. "
            f"Required: path, label; optional: speaker, gender, split."
        )
    for number, row in enumerate(rows, start=2):
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else manifest.parent / path
        try:
            yield Clip(
                path=str(path),
                emotion=raw_label_to_emotion(row["label"], label_map),
                speaker=row.get("speaker") or None,
                gender=normalize_gender(row.get("gender")),
                metadata={"split": row.get("split") or None, **{k: v for k, v in row.items() if k not in KNOWN}},
            )
        except CorpusError as err:
            yield Problem(f"{manifest}:{number} ({row['path']})", str(err))


def manifest_features(data_dir: Path) -> dict[str, datasets.Value]:
    """The extra string columns a manifest carries (its own metadata), plus ``split``."""
    rows = read_rows(find_manifest(data_dir))
    extra = [name for name in (rows[0] if rows else {}) if name not in KNOWN]
    return {"split": datasets.Value("string"), **{name: datasets.Value("string") for name in extra}}


CORPUS = Corpus(name="manifest", list_clips=list_clips, features=manifest_features, doc=__doc__)
