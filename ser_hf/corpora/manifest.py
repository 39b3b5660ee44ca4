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

from collections.abc import Iterator, Mapping
from pathlib import Path

import datasets

from ser_hf.corpora.base import Clip, Corpus, Problem, normalize_gender, normalize_speaker
from ser_hf.corpora.folder import raw_label_to_emotion
from ser_hf.corpora.tables import read_csv_rows, read_jsonl_rows
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


def read_rows(manifest: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV (``.csv``/``.tsv``) or JSON-lines manifest as dictionaries of strings, each with the line it
    starts on.

    The file must be UTF-8 (a byte-order mark is fine). A CSV row with more or fewer cells than the header gets
    the key ``None`` (its extra cells) or ``None`` values (its missing cells); :func:`list_clips` reports it.

    Raises:
        CorpusError: the file is not UTF-8, not CSV (a quote never closed, a row running over several lines), or
            has a line that is not a JSON object.
    """
    if manifest.suffix.lower() in (".jsonl", ".json"):
        rows = read_jsonl_rows(manifest, "Manifest", '{"path": "a.wav", "label": "happy"}')
        return [(line, {str(k): "" if v is None else str(v) for k, v in row.items()}) for line, row in rows]
    _, rows = read_csv_rows(manifest, "Manifest", "a header row path,label,...",
                            delimiter="\t" if manifest.suffix.lower() == ".tsv" else ",")
    return rows


def _row_problem(row: dict) -> str | None:
    """Why a CSV row cannot be read (extra or missing cells), or None."""
    if None in row:
        return f"the row has {len(row[None])} more cell(s) than the header ({row[None]}); quote cells holding commas"
    missing = [key for key, value in row.items() if value is None]
    if missing:
        return f"the row has no cell for column(s) {missing}; give every row as many cells as the header"
    return None


def list_clips(root: Path, label_map: Mapping[str, str] | None = None) -> Iterator[Clip | Problem]:
    manifest = find_manifest(root)
    rows = read_rows(manifest)
    columns = set(rows[0][1]) if rows else set()
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise CorpusError(
            f"Manifest {str(manifest)!r} lacks column(s) {missing}; found {sorted(columns)}. "
            f"Required: path, label; optional: speaker, gender, split."
        )
    for number, row in rows:
        problem = _row_problem(row) or next(
            (f"the {name!r} cell is empty or missing; fill it" for name in REQUIRED if not (row.get(name) or "").strip()),
            None)
        if problem is not None:
            yield Problem(f"{manifest}:{number}", problem)
            continue
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else manifest.parent / path
        try:
            yield Clip(
                path=str(path),
                raw_label=row["label"],
                emotion=raw_label_to_emotion(row["label"], label_map),
                speaker=normalize_speaker(row.get("speaker")),
                gender=normalize_gender(row.get("gender")),
                metadata={"split": (row.get("split") or "").strip() or None, **{k: v for k, v in row.items() if k not in KNOWN}},
            )
        except CorpusError as err:
            yield Problem(f"{manifest}:{number} ({row['path']})", str(err))


def manifest_features(data_dir: Path) -> dict[str, datasets.Value]:
    """The extra string columns a manifest carries (its own metadata), plus ``split``."""
    rows = read_rows(find_manifest(data_dir))
    extra = [name for name in (rows[0][1] if rows else {}) if name is not None and name not in KNOWN]
    return {"split": datasets.Value("string"), **{name: datasets.Value("string") for name in extra}}


CORPUS = Corpus(name="manifest", list_clips=list_clips, features=manifest_features, doc=__doc__)
