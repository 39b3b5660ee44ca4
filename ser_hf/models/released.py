"""Ready-made emotion models: an offline preset backbone plus a trained head shipped inside ser_hf.

A released model is a frozen Whisper preset (:mod:`ser_hf.models.presets`) and the head of a
weighted-layer-sum classifier trained on the real corpora by ``benchmarks/release_models.py``. The head is
package data, ``ser_hf/models/released_heads/<name>/``:

- ``head.safetensors``: exactly the head tensors of ``WhisperForAudioClassification`` with
  ``use_weighted_layer_sum=True`` (:data:`HEAD_TENSORS`), a few hundred KB; the same tensors always give the
  same bytes, so a retrain that reproduces the head reproduces its SHA-256;
- ``record.json``: how it was made and what it scores: labels, backbone preset and its weights'
  SHA-256, ``max_source_positions``, ``classifier_proj_size``, audio preprocessing, the recipe, a
  fingerprint of the training data, the ser_hf version, the head's SHA-256, licences, languages, and the
  speaker-independent CV scores copied from ``benchmarks/results/release_models.json``.
- ``speaker_adaptation.safetensors`` + ``.json`` (optional): the speaker-adaptive head and class means of
  :mod:`ser_hf.models.adaptive_head`, their SHA-256s in the record, so ``EmotionRecognizer.enroll``
  and ``ser-hf predict --speaker-pattern`` adapt a released model to a speaker's voice.
- ``README.md`` + ``ser_hf_card.json``: the model card, rendered from the record when the model is released
  (:mod:`ser_hf.cards.release`; ``benchmarks/release_models.py --cards`` renders it again without training),
  their SHA-256s in the record under ``card``.

:func:`~ser_hf.models.released_checkpoint.prepare_released` checks the head against its SHA-256, builds the preset backbone with the head
into a standard checkpoint in the models cache (``$SER_HF_CACHE/models/<name>``, written atomically
like the presets), with the ``ser_hf_run.json`` that records the preprocessing, and copies the shipped card
beside it (checked against its SHA-256s).
Every name is accepted wherever a model is (``resolve_model_path``): ``EmotionRecognizer``,
``ser-hf predict/evaluate/serve/export-onnx/push --model NAME``.

| name                            | classes                              | trained on      | backbone          |
|---------------------------------|--------------------------------------|-----------------|-------------------|
| `emotion-whisper-base`          | neutral, happy, sad, angry           | URDU + RAVDESS  | `whisper-base`    |
| `emotion-whisper-base-ravdess8` | the 8 RAVDESS emotions               | RAVDESS         | `whisper-base`    |
| `emotion-whisper-tiny.en`       | neutral, happy, sad, angry (fast)    | URDU + RAVDESS  | `whisper-tiny.en` |

RAVDESS is CC BY-NC-SA 4.0 and URDU is for research use only: these models are for non-commercial use.

Example:
    ```python
    >>> from transformers import pipeline
    >>> from ser_hf.models.released_checkpoint import prepare_released
    >>> path = prepare_released("emotion-whisper-base")  # builds once, then reuses the cache  # doctest: +SKIP
    >>> pipeline("audio-classification", model=str(path))(wave_16khz)  # doctest: +SKIP

    ```
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import ser_hf
from ser_hf._io import default_permissions, file_sha256
from ser_hf.checkpoint import CARD_DATA_FILE, MODEL_CARD
from ser_hf.errors import ModelError
from ser_hf.models.backbones import PRESETS

__all__ = [
    "CARD_FILES", "HEAD_FILE", "HEAD_TENSORS", "RECORD_FILE", "RELEASED_DIR", "RELEASES", "ReleaseSpec",
    "data_fingerprint", "file_sha256", "get_release", "head_logits", "load_head", "read_record", "record_card",
    "released_names", "scores_summary", "verify_adaptation", "verify_card", "verify_head", "write_release",
]

logger = logging.getLogger(__name__)

#: The package data folder holding one sub-folder per released model.
RELEASED_DIR = Path(__file__).resolve().parent / "released_heads"
HEAD_FILE = "head.safetensors"
RECORD_FILE = "record.json"
RECORD_FORMAT = 1
#: What a head file holds: the parameters ``load_head_into_model`` copies into the classifier.
HEAD_TENSORS = ("layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias")
#: The shipped model card: ``README.md`` and the card data it is rendered from (written by ser_hf.cards.release).
CARD_FILES = (MODEL_CARD, CARD_DATA_FILE)

_NON_COMMERCIAL = (
    "Non-commercial use only: trained on RAVDESS, which is licensed CC BY-NC-SA 4.0 (attribution, non-commercial, "
    "share-alike)"
)


@dataclass(frozen=True)
class ReleaseSpec:
    """What a released model is and how ``benchmarks/release_models.py`` trains it.

    Attributes:
        name: The name users type, e.g. ``"emotion-whisper-base"``.
        backbone: The preset it is built on (a checkpoint directory works too, for tests).
        corpora: The corpora it is trained on, all clips of each (``../shared/data/<corpus>``).
        emotions: The emotion subset (``"4class"``, ``"ravdess8"``); the same for every corpus.
        max_source_positions: Whisper input length (50 per second: 300 = 6 s); ``None`` pads to 30 s.
        summary: One line for ``ser-hf models list``.
        licence: The model's licence id (Hub metadata).
        licence_note: The terms in words, shown by ``models list``, the card and the README.
        licence_name: With ``licence="other"`` (no Hub licence id fits): an id for the terms (Hub ``license_name``).
        licence_link: With ``licence="other"``: where the terms are (Hub ``license_link``).
        directory: Where its head and record live (default: the package data folder).
        speed_copies: Speed factors of the training copies its head also learns from (``probe_speed_copies``;
            empty: none). The RAVDESS-only model uses its corpus's probe recipe's 0.9x and 1.1x (they gain on
            RAVDESS 8-class and the training speakers' inner CV picks them in every fold:
            ``benchmarks/results/speed_copies.json``); the URDU + RAVDESS models none (with every corpus counting
            the same, speed copies cost both backbones over 5 fold assignments: ``corpus_balance.json``).
        noise_copies: SNRs (dB) of the noisy training copies its head also learns from (``probe_noise_copies``;
            empty: none). The RAVDESS-only model uses its corpus's probe recipe's 20 dB
            (``benchmarks/results/noise_copies.json``); so do the URDU + RAVDESS models: ``emotion-whisper-base``
            gains 1.1 pooled UA with them over 5 fold assignments (RAVDESS +2.1, URDU -1.0, ``corpus_balance.json``)
            and ``emotion-whisper-tiny.en`` loses 0.3 (within that noise) for far steadier scores in noise (its
            backbone's RAVDESS 4-class probe with them: 89.8 against 74.2 UA under 20 dB white noise,
            ``perturbation_whisper_tiny_4class_noise_copies.json``, the fast model being the one streaming uses).
            ``emotion-whisper-tiny.en-urdu`` none: they cost URDU alone 1.6 in ``noise_copies.json``.
    """

    name: str
    backbone: str
    corpora: tuple[str, ...]
    emotions: str | None
    max_source_positions: int | None
    summary: str
    licence: str
    licence_note: str
    directory: Path | None = None
    speed_copies: tuple[float, ...] = ()
    noise_copies: tuple[float, ...] = ()
    licence_name: str | None = None
    licence_link: str | None = None

    @property
    def folder(self) -> Path:
        return Path(self.directory) if self.directory is not None else RELEASED_DIR / self.name

    @property
    def head_path(self) -> Path:
        return self.folder / HEAD_FILE

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD_FILE


RELEASES: dict[str, ReleaseSpec] = {
    spec.name: spec
    for spec in (
        ReleaseSpec(
            name="emotion-whisper-base",
            backbone="whisper-base",
            corpora=("urdu", "ravdess"),
            emotions="4class",
            max_source_positions=300,
            summary="4 emotions (neutral, happy, sad, angry) from URDU + RAVDESS; Whisper base, 6 s input",
            licence="cc-by-nc-sa-4.0",
            licence_note=f"{_NON_COMMERCIAL}; URDU is for research use only, as its authors state.",
            noise_copies=(20.0,),
        ),
        ReleaseSpec(
            name="emotion-whisper-base-ravdess8",
            backbone="whisper-base",
            corpora=("ravdess",),
            emotions="ravdess8",
            max_source_positions=300,
            summary="the 8 RAVDESS emotions (acted English); Whisper base, 6 s input",
            licence="cc-by-nc-sa-4.0",
            licence_note=f"{_NON_COMMERCIAL}.",
            speed_copies=(0.9, 1.1),
            noise_copies=(20.0,),
        ),
        ReleaseSpec(
            name="emotion-whisper-tiny.en-urdu",
            backbone="whisper-tiny.en",
            corpora=("urdu",),
            emotions="4class",
            max_source_positions=500,
            summary="4 emotions in Urdu speech, from URDU alone; Whisper tiny.en, 10 s input",
            licence="other",
            licence_note="Research use only: trained on URDU, which its authors release for research use only.",
            licence_name="urdu-research-only",
            licence_link="https://github.com/siddiquelatif/URDU-Dataset",
        ),
        ReleaseSpec(
            name="emotion-whisper-tiny.en",
            backbone="whisper-tiny.en",
            corpora=("urdu", "ravdess"),
            emotions="4class",
            max_source_positions=300,
            summary="the fast model: 4 emotions from URDU + RAVDESS; Whisper tiny.en, 6 s input",
            licence="cc-by-nc-sa-4.0",
            licence_note=f"{_NON_COMMERCIAL}; URDU is for research use only, as its authors state.",
            noise_copies=(20.0,),
        ),
    )
}


def released_names() -> list[str]:
    """The released models' names, sorted."""
    return sorted(RELEASES)


def get_release(name: str) -> ReleaseSpec:
    """The released model called ``name``.

    Raises:
        ModelError: If there is none; the message lists them and the closest match.
    """
    if name in RELEASES:
        return RELEASES[name]
    close = difflib.get_close_matches(name, [*RELEASES, *PRESETS], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelError(f"unknown released model {name!r}; expected one of {released_names()}.{hint} See `ser-hf models list`.")


def _spec(name_or_spec: str | ReleaseSpec) -> ReleaseSpec:
    return name_or_spec if isinstance(name_or_spec, ReleaseSpec) else get_release(name_or_spec)


def read_record(name_or_spec: str | ReleaseSpec) -> dict[str, Any]:
    """The ``record.json`` of a released model.

    Raises:
        ModelError: when its head or record is not in this install (not trained yet, or a broken
            install), or the record is not valid JSON.
    """
    spec = _spec(name_or_spec)
    missing = [path.name for path in (spec.head_path, spec.record_path) if not path.is_file()]
    if missing:
        raise ModelError(
            f"released model {spec.name!r}: {missing} missing from {spec.folder}. Its head has not been trained in "
            f"this copy of ser_hf (train it with `python benchmarks/release_models.py --write`), or the install is "
            f"broken (reinstall ser_hf)."
        )
    try:
        return json.loads(spec.record_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelError(f"released model {spec.name!r}: {spec.record_path} is not valid JSON ({err}); reinstall ser_hf.") from err


def verify_head(name_or_spec: str | ReleaseSpec) -> tuple[dict[str, Any], Path]:
    """Check a shipped head against the SHA-256 in its record.

    Returns:
        ``(record, head path)``.

    Raises:
        ModelError: a missing head or record, or a head whose SHA-256 differs from the record's (a
            tampered or corrupted file).
    """
    spec = _spec(name_or_spec)
    record = read_record(spec)
    expected = record.get("head", {}).get("sha256")
    found = file_sha256(spec.head_path)
    if found != expected:
        raise ModelError(
            f"released model {spec.name!r}: checksum mismatch for {spec.head_path}: SHA-256 {found}, but its record "
            f"({spec.record_path.name}) says {expected}. The head file was modified or corrupted; reinstall ser_hf "
            f"(pip install --force-reinstall ser-hf) or retrain it with benchmarks/release_models.py."
        )
    return record, spec.head_path


def load_head(path: str | os.PathLike):
    """The head tensors of a head file, checked to be exactly :data:`HEAD_TENSORS`."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if set(tensors) != set(HEAD_TENSORS):
        raise ModelError(f"head file {path} holds tensors {sorted(tensors)}; expected exactly {sorted(HEAD_TENSORS)}.")
    return tensors


def head_logits(tensors: Mapping[str, Any], pooled: np.ndarray) -> np.ndarray:
    """Logits of a head on per-layer mean states ``(clips, layers, hidden)``, as the full model computes them.

    The weighted layer sum, projector and classifier are affine, so they commute with the mean over
    frames (see :mod:`ser_hf.training.probe`): this is what the checkpoint predicts, without the backbone.
    """
    arrays = {name: np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
              for name, value in tensors.items()}
    weights = np.exp(arrays["layer_weights"] - arrays["layer_weights"].max())
    summed = np.einsum("l,clh->ch", weights / weights.sum(), np.asarray(pooled, dtype=np.float64))
    projected = summed @ arrays["projector.weight"].T + arrays["projector.bias"]
    return projected @ arrays["classifier.weight"].T + arrays["classifier.bias"]


def data_fingerprint(dataset, roots: Mapping[str, str | os.PathLike]) -> dict[str, Any]:
    """SHA-256 over the sorted (relative path, file SHA-256, label, speaker) of every training clip.

    Args:
        dataset: A corpus dataset (``audio``, ``label``, ``speaker``, ``corpus`` columns).
        roots: Corpus name -> its folder; paths are recorded relative to it, prefixed by the corpus name,
            so the fingerprint does not depend on where the data lies.

    Returns:
        ``{"sha256", "clips", "speakers", "label_counts", "speaker_lists"}`` (counts per corpus).
    """
    names = dataset.features["label"].names
    rows, label_counts, speakers = [], {}, {}
    for path, label, speaker, corpus in zip(dataset["audio"], dataset["label"], dataset["speaker"], dataset["corpus"]):
        relative = Path(os.path.relpath(path, roots[corpus])).as_posix()
        rows.append(f"{corpus}/{relative}\t{file_sha256(path)}\t{names[label]}\t{speaker}")
        counts = label_counts.setdefault(corpus, dict.fromkeys(names, 0))
        counts[names[label]] += 1
        speakers.setdefault(corpus, set()).add(speaker)
    digest = hashlib.sha256("\n".join(sorted(rows)).encode("utf-8")).hexdigest()
    return {"sha256": digest, "clips": len(rows), "speakers": sum(len(s) for s in speakers.values()),
            "label_counts": label_counts, "speaker_lists": {c: sorted(s) for c, s in speakers.items()}}


def write_release(name_or_spec: str | ReleaseSpec, head_state: Mapping[str, Any], fields: Mapping[str, Any],
                  directory: str | os.PathLike | None = None) -> Path:
    """Write a trained head and its record (what ``benchmarks/release_models.py --write`` commits).

    Args:
        name_or_spec: The released model.
        head_state: The head tensors (:data:`HEAD_TENSORS`, e.g. ``ProbeHead.folded_state()``).
        fields: What the training knows: ``labels``, ``preprocessing``, ``training`` (recipe, method),
            ``data`` (fingerprint, counts), ``scores`` (CV scores and their result file), ``limitations``.
            ``speaker_adaptation`` may name, under ``files``, files the caller already wrote into the folder
            (the speaker-adaptive probe): their SHA-256s are recorded, and :func:`prepare_released` ships them.
        directory: Write here instead of the spec's folder (e.g. a retrain to compare).

    Returns:
        The folder written (``head.safetensors`` + ``record.json``). The card is not written here (cards sit
        above models): render it next with :func:`ser_hf.cards.release.ship_release_card`.
    """
    from safetensors.torch import save_file

    from ser_hf.corpora import corpus_languages

    spec = _spec(name_or_spec)
    if set(head_state) != set(HEAD_TENSORS):
        raise ModelError(f"write_release: head_state holds {sorted(head_state)}; expected exactly {sorted(HEAD_TENSORS)}.")
    folder = Path(directory) if directory is not None else spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: head_state[name].detach().cpu().float().contiguous() for name in HEAD_TENSORS}
    # One metadata key only: safetensors writes metadata in hash-map order, so two keys would make the same
    # tensors give files (and SHA-256s) that differ from one run to the next. The record names the model.
    save_file(tensors, str(folder / HEAD_FILE), metadata={"format": "pt"})
    default_permissions(folder / HEAD_FILE)
    preset = PRESETS.get(spec.backbone)
    record = {
        "format": RECORD_FORMAT, "name": spec.name, "summary": spec.summary, **dict(fields),
        "emotions": spec.emotions, "corpora": list(spec.corpora),
        "backbone": {"name": spec.backbone, "source_sha256": preset.sha256 if preset else None},
        "model": {"model_type": "whisper", "use_weighted_layer_sum": True,
                  "classifier_proj_size": int(tensors["projector.weight"].shape[0]),
                  "num_layers": int(tensors["layer_weights"].shape[0]),
                  "max_source_positions": spec.max_source_positions},
        "head": {"file": HEAD_FILE, "sha256": file_sha256(folder / HEAD_FILE),
                 "tensors": {name: list(value.shape) for name, value in tensors.items()}},
        "licence": spec.licence, "licence_note": spec.licence_note,
        **({"licence_name": spec.licence_name, "licence_link": spec.licence_link} if spec.licence == "other" else {}),
        "languages": sorted(corpus_languages(spec.corpora)),
        "ser_hf_version": ser_hf.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    shipped = record.get("speaker_adaptation")
    if isinstance(shipped, Mapping):
        record["speaker_adaptation"] = {**shipped, "sha256": {name: file_sha256(folder / name)
                                                              for name in shipped.get("files", ())}}
    _write_record(folder, record)
    return folder


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def record_card(folder: str | os.PathLike) -> dict[str, Any]:
    """Record the SHA-256s of the card files (:data:`CARD_FILES`) in the folder's ``record.json``.

    :func:`ser_hf.cards.release.ship_release_card` calls it after rendering the card; the card does not read the
    ``card`` entry, so rendering it again from the updated record gives the same files.

    Returns:
        The record as written.
    """
    folder = Path(folder)
    record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    record["card"] = {"files": list(CARD_FILES), "sha256": {name: file_sha256(folder / name) for name in CARD_FILES}}
    _write_record(folder, record)
    return record


def _verify_shipped(spec: ReleaseSpec, section: Mapping[str, Any], fix: str) -> list[Path]:
    paths = []
    for name, expected in section.get("sha256", {}).items():
        path = spec.folder / name
        found = file_sha256(path) if path.is_file() else "missing"
        if found != expected:
            raise ModelError(
                f"released model {spec.name!r}: {path} has SHA-256 {found}, but its record ({RECORD_FILE}) says "
                f"{expected}. Reinstall ser_hf (pip install --force-reinstall ser-hf) or {fix}.")
        paths.append(path)
    return paths


def verify_adaptation(spec: ReleaseSpec, record: Mapping[str, Any]) -> list[Path]:
    """The shipped speaker adaptation files of a released model, checked against its record (none: ``[]``).

    Raises:
        ModelError: a file missing or modified since the record was written.
    """
    shipped = record.get("speaker_adaptation")
    if not isinstance(shipped, Mapping):  # older records: a sentence saying none is shipped
        return []
    return _verify_shipped(spec, shipped, "retrain it with benchmarks/release_models.py --write")


def verify_card(spec: ReleaseSpec, record: Mapping[str, Any]) -> list[Path]:
    """The shipped card files of a released model (:data:`CARD_FILES`), checked against its record.

    Raises:
        ModelError: the record names no card (rendered after the head, so a release stopped between the two), or a
            card file missing or modified since the record was written.
    """
    shipped = record.get("card")
    if not isinstance(shipped, Mapping) or set(shipped.get("sha256", {})) != set(CARD_FILES):
        raise ModelError(
            f"released model {spec.name!r}: its record ({spec.record_path}) names no model card {list(CARD_FILES)}. "
            f"Render it from the record with `python benchmarks/release_models.py --cards --models {spec.name}`, or "
            f"reinstall ser_hf (pip install --force-reinstall ser-hf).")
    return _verify_shipped(spec, shipped, f"render the card again with `python benchmarks/release_models.py "
                                          f"--cards --models {spec.name}`")


def scores_summary(record: Mapping[str, Any]) -> str:
    """``"UA 79.9 [75.8-84.2] (pooled speaker-independent CV); URDU 70.1, RAVDESS 82.0"`` from a record."""
    scores = record.get("scores", {})
    pooled = scores.get("pooled", {})
    if "unweighted_accuracy" not in pooled:
        return "not scored"
    # None where the scored clips came from too few speakers to resample (see evaluation.bootstrap.interval_caveat)
    low, high = pooled.get("confidence_intervals", {}).get("unweighted_accuracy") or (None, None)
    interval = f" [{100 * low:.1f}-{100 * high:.1f}]" if low is not None else ""
    per_corpus = [f"{corpus} {100 * values['unweighted_accuracy']:.1f}"
                  for corpus, values in scores.get("per_corpus", {}).items()]
    tail = f"; per corpus: {', '.join(per_corpus)}" if len(per_corpus) > 1 else ""
    return f"UA {100 * pooled['unweighted_accuracy']:.1f}{interval}{tail}"
