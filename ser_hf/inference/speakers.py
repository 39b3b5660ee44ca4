"""Speaker enrollment for :class:`~ser_hf.inference.recognizer.EmotionRecognizer`.

A probe checkpoint trained with ``probe_speaker_adaptation: true`` carries, beside its standard head,
``speaker_adaptation.safetensors/json`` (see :mod:`ser_hf.models.adaptive_head`). Enrolling a
speaker runs the encoder on their unlabelled clips, estimates their offset (with the estimator the
model chose in training), and from then on that speaker's clips are scored by the adaptive head with
the offset removed. Everything is computed from the same pooled encoder states the standard head uses, and
:meth:`SpeakerEnrollments.speaker_head` gives the standard head tensors that compute it, so a
speaker-specific model can be saved as an ordinary ``pipeline()`` checkpoint.

Where adaptation cannot help (it was switched off in training, or a speaker has fewer clips than the
minimum), the speaker is kept on the global head, and the enrollment says so (``adapted: False`` and a
``reason``); predictions say which head scored them.

Enrollments are saved as ``<name>.safetensors`` (each speaker's :class:`~ser_hf.models.adaptive_head.SpeakerShift`:
their offset, and the spread of their scores where the model adapts it) + ``<name>.json`` (speaker ids, clip counts,
and a fingerprint of the adaptation they belong to), never as a pickle.

With test-time copies (``EmotionRecognizer(test_time_copies=...)``), every version of a clip (the clip, then each
copy) has its own shift, enrolled from the same version of the speaker's clips, and a clip's probabilities are the
softmax of its versions' mean log-probability, each version with its shift.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ser_hf._atomic_folder import atomic_directory
from ser_hf._io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_bounded, read_json
from ser_hf._output_folders import CHECKPOINT_OUTPUT_FILES, check_output_folder, check_own_folder
from ser_hf.checkpoint import RUN_RECORD
from ser_hf.errors import ModelError, SERError
from ser_hf.inference.enrollment_inputs import ENROLLMENT_SILENCE_DB as ENROLLMENT_SILENCE_DB  # its old import path
from ser_hf.inference.enrollment_inputs import enrollment_level_db as enrollment_level_db  # its old import path
from ser_hf.inference.enrollment_inputs import enrollment_pair, screen_clips, shown_path
from ser_hf.inference.enrollment_inputs import silent_clips as silent_clips  # its old import path
from ser_hf.inference.speaker_scorers import STREAM_WINDOWS as STREAM_WINDOWS  # their old import path
from ser_hf.inference.speaker_scorers import EnrolledSpeaker as EnrolledSpeaker
from ser_hf.inference.speaker_scorers import OnlineSpeaker as OnlineSpeaker
from ser_hf.inference.speaker_scorers import enrollment_summary, speaker_probabilities
from ser_hf.models.adaptive_head import ADAPTATION_WEIGHTS, MAX_SHIFT, load_adaptation
from ser_hf.names import speaker_text
from ser_hf.paths import display_path, is_utf8, printable
from ser_hf.ranges import MAX_COPIES

logger = logging.getLogger(__name__)

#: Marks a speaker model (:meth:`SpeakerEnrollments.save_speaker_model`): whose speaker, from which checkpoint.
SPEAKER_RECORD = "ser_hf_speaker.json"
#: Every file a speaker model holds (config, weights, feature extractor, run record, :data:`SPEAKER_RECORD`).
SPEAKER_MODEL_FILES = frozenset({"config.json", "model.safetensors", "preprocessor_config.json", "ser_hf_run.json",
                                 SPEAKER_RECORD})
#: The safetensors metadata ``format`` of an enrollment file (how an earlier one is told from other files).
ENROLLMENT_FORMAT = "ser_hf-enrollments"
#: A JSON of enrollments: ids and counts, about 200 bytes a speaker.
MAX_ENROLLMENT_BYTES = 64 * 2**20
MAX_OFFSET = MAX_SHIFT  # its old name

HEAD_TENSORS = ("layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias")


def model_head(model) -> dict[str, np.ndarray]:
    """The standard head's tensors of a loaded ``AutoModelForAudioClassification`` (float64 numpy)."""
    state = model.state_dict()
    missing = [name for name in HEAD_TENSORS if name not in state]
    if missing:
        raise ModelError(f"speaker adaptation needs a weighted-layer-sum head; the model lacks {missing}. "
                         f"Use a probe checkpoint trained with probe_speaker_adaptation: true.")
    return {name: state[name].detach().cpu().double().numpy() for name in HEAD_TENSORS}


def _fingerprint(checkpoint: Path) -> str:
    return hashlib.sha256((checkpoint / ADAPTATION_WEIGHTS).read_bytes()).hexdigest()[:20]


class SpeakerEnrollments:
    """Enrolled speakers of one adaptive checkpoint: their shifts, and scoring with them.

    Args:
        model: The loaded PyTorch classifier (ONNX exports hold no pooled states).
        feature_extractor: Its feature extractor.
        checkpoint: The checkpoint directory holding the adaptation files.
        copies: The recognizer's test-time copies (``(copy, name)`` pairs): enrolled and scored too.
    """

    def __init__(self, model, feature_extractor, checkpoint: str | os.PathLike, copies=()):
        if not hasattr(model, "state_dict"):
            raise ModelError("speaker adaptation needs the PyTorch checkpoint, not an ONNX export: load the "
                             "checkpoint directory the export was made from.")
        self.model = model
        self.feature_extractor = feature_extractor
        self.sampling_rate = int(feature_extractor.sampling_rate)  # the rate of the waves enrolled and scored
        self.checkpoint = Path(checkpoint)
        self.adaptation = load_adaptation(self.checkpoint, model_head(model))
        self.fingerprint = _fingerprint(self.checkpoint)
        self.speakers: dict[str, dict[str, Any]] = {}
        self.copies = list(copies)

    def without_speakers(self) -> SpeakerEnrollments:
        """A registry of the same model and copies with no speaker enrolled: where a batch job enrolls the speakers
        of its files, so that it never replaces the caller's own enrollment of a speaker of the same id."""
        fresh = copy.copy(self)
        fresh.speakers = {}
        return fresh

    @property
    def copy_names(self) -> list[str]:
        return [name for _, name in self.copies]

    def pooled(self, waves, batch_size: int = 8) -> np.ndarray:
        from ser_hf.models.pooling import pool_waves

        waves = list(waves)
        if not waves:  # no forward pass; the shape an offset is estimated from
            return np.zeros((0, *self.adaptation.means.shape[1:]))
        return pool_waves(self.model, self.feature_extractor, waves, batch_size).astype(np.float64)

    def versions(self, waves, batch_size: int = 8) -> list[np.ndarray]:
        """Pooled states of ``waves``, then of each test-time copy of them (just the first without copies)."""
        waves = list(waves)
        return [self.pooled(waves, batch_size),
                *(self.pooled([copy.alter(wave) for wave in waves], batch_size) for copy, _ in self.copies)]

    def enrollment_versions(self, waves, batch_size: int = 8,
                            levels=None) -> tuple[list[np.ndarray], dict[str, int]]:
        """:meth:`versions` of the clips of ``waves`` that enrollment learns from (:func:`screen_clips`: the voiced
        ones, each recording once; ``levels``: each clip's :func:`enrollment_level_db` before the checkpoint's
        cleaning, default the waves'), and how many were left out (``{"silent": n, "repeated": m}``, the keywords of
        :meth:`enroll`). Clips left out cost no forward pass."""
        kept, silent, repeated = screen_clips(waves, levels, sampling_rate=self.sampling_rate)
        return self.versions(kept, batch_size), {"silent": silent, "repeated": repeated}

    def enroll(self, speaker: str, pooled: np.ndarray, copies: list[np.ndarray] | None = None,
               silent: int = 0, repeated: int = 0) -> dict[str, Any]:
        """Enroll ``speaker`` from the pooled states of their voiced clips (and of each test-time copy of them, as
        :meth:`versions` gives them); falls back to the global head when it must (no clips at all included).
        ``silent``, ``repeated``: how many of the speaker's clips were left out as silent or voiceless or as a
        recording given twice (:func:`screen_clips`), said in the enrollment (``silent_clips``, ``repeated_clips``)."""
        speaker = speaker_id(speaker)
        entry: dict[str, Any] = {"speaker": speaker, "clips": int(len(pooled)), "adapted": False, "shift": None}
        if silent:
            entry["silent_clips"] = int(silent)
        if repeated:
            entry["repeated_clips"] = int(repeated)
        parts = [f"{count} {kind} clip(s)" for count, kind in ((silent, "silent or voiceless"), (repeated, "repeated")) if count]
        left_out = f" ({' and '.join(parts)} left out)" if parts else ""
        if not self.adaptation.enabled:
            entry["reason"] = f"speaker adaptation is off for this model ({self.adaptation.record.get('reason')})"
        elif len(pooled) < max(1, self.adaptation.min_clips):
            entry["reason"] = (f"{len(pooled)} voiced clip(s) enrolled{left_out}, fewer than the "
                               f"{max(1, self.adaptation.min_clips)} adaptation needs")
            if parts:
                entry["reason"] += ("; enroll more recordings of their voice (a silent or voiceless clip, such as a "
                                    "hum or steady noise, holds none; a repeated one has the same samples as an "
                                    "earlier clip)")
        else:
            entry.update(adapted=True, shift=self.adaptation.enroll(pooled))
            if copies:
                entry.update(copies=self.copy_names, copy_shifts=[self.adaptation.enroll(copy) for copy in copies])
        if not entry["adapted"]:
            logger.warning("speaker %r: using the global model: %s", printable(speaker), entry["reason"])
        self.speakers[speaker] = entry
        return self.summary(speaker)

    def summary(self, speaker: str) -> dict[str, Any]:
        return enrollment_summary(self._entry(speaker))

    def _entry(self, speaker: str) -> dict[str, Any]:
        speaker = speaker_id(speaker)  # the form enroll() keys them by; '', '  ' or True name nobody
        if speaker not in self.speakers:
            shown = printable(speaker)[:80]
            names = sorted(self.speakers)
            enrolled = [printable(name)[:40] for name in names[:10]] + ([f"... {len(names) - 10} more"] if
                                                                        len(names) > 10 else [])
            raise SERError(f"speaker {shown!r} is not enrolled (enrolled: {enrolled}); call "
                           f"enroll({shown!r}, clips) first, or predict without a speaker.")
        return self.speakers[speaker]

    def probabilities(self, speaker: str, pooled: np.ndarray, copies: list[np.ndarray] | None = None) -> np.ndarray:
        """Softmax probabilities of ``pooled`` clips for an enrolled speaker (with ``copies``, the pooled states of
        each test-time copy of them, averaged as the module docstring says)."""
        return speaker_probabilities(self.adaptation, [pooled, *(copies or [])], self.shifts(speaker, bool(copies)))

    def shifts(self, speaker: str, copies: bool) -> list:
        """The speaker's shift (None: the global head), then with ``copies`` each test-time copy's.

        Raises:
            SERError: for a speaker not enrolled, or enrolled without this recognizer's test-time copies.
        """
        return self._shifts(self._entry(speaker), copies)

    def _shifts(self, entry: dict[str, Any], copies: bool) -> list:
        speaker = entry["speaker"]
        if not copies:
            return [entry["shift"]]
        if not entry["adapted"]:
            return [None] * (1 + len(self.copies))
        if entry.get("copies") != self.copy_names or entry.get("copy_shifts") is None:
            shown = printable(str(speaker))
            raise SERError(f"speaker {shown!r} was enrolled without the test-time copies {self.copy_names} (with "
                           f"{entry.get('copies') or 'none'}); enroll {shown!r} again with this recognizer.")
        return [entry["shift"], *entry["copy_shifts"]]

    def speaker_head(self, speaker: str) -> dict[str, np.ndarray]:
        """Standard head tensors scoring like :meth:`probabilities` for ``speaker`` (the global head if not adapted)."""
        return _speaker_head(self.adaptation, self._entry(speaker))

    def save_speaker_model(self, speaker: str, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """A standard checkpoint whose head is :meth:`speaker_head` (same backbone, same preprocessing record).

        It scores each clip alone, as ``pipeline()`` does: like ``predict(..., speaker=speaker)`` of a recognizer
        without test-time copies. With copies (which no single checkpoint can hold), that is said in a warning and in
        its :data:`SPEAKER_RECORD` (``test_time_copies``: the copies left out).

        ``out_dir`` must be new or empty, or with ``overwrite`` an earlier speaker model (it holds
        :data:`SPEAKER_RECORD`); never the checkpoint itself. The folder is written beside it and moved in whole.

        Raises:
            ModelError: for an ``out_dir`` that is a file, the checkpoint, or a folder of other files.
            SERError: for a speaker who is not enrolled.
        """
        import shutil

        import torch

        from ser_hf.models.factory import save_checkpoint

        entry = self._entry(speaker)  # an unknown speaker fails before anything is written
        head = _speaker_head(self.adaptation, entry)
        out = check_output_folder(out_dir, argument="out_dir", marker=SPEAKER_RECORD, what="a speaker model",
                                  sources=[self.checkpoint], overwrite=overwrite,
                                  writes={*CHECKPOINT_OUTPUT_FILES, *SPEAKER_MODEL_FILES}, whole=True)
        model = copy.deepcopy(self.model)
        model.load_state_dict({name: torch.as_tensor(np.asarray(value), dtype=torch.float32)
                               for name, value in head.items()}, strict=False)
        check_own_folder(out, SPEAKER_MODEL_FILES)  # overwrite replaces an earlier speaker model, not files added to it
        if self.copies:
            logger.warning("the speaker model of %r scores each clip alone, as pipeline() does: it leaves out this "
                           "recognizer's test-time copies %s, so its scores differ a little from predict(speaker=...)",
                           printable(entry["speaker"]), self.copy_names)
        with atomic_directory(out, overwrite=out.exists()) as folder:
            save_checkpoint(model, self.feature_extractor, folder)
            if (self.checkpoint / RUN_RECORD).is_file():
                shutil.copyfile(self.checkpoint / RUN_RECORD, folder / RUN_RECORD)
            atomic_write_json(folder / SPEAKER_RECORD, {
                "speaker": entry["speaker"], "adapted": entry["adapted"], "clips": entry["clips"],
                "source": str(self.checkpoint.resolve()), "adaptation": self.fingerprint,
                "test_time_copies": {"left_out": self.copy_names}}, indent=2)
        return out

    # ------------------------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path.safetensors`` (shifts) and ``path.json`` (ids, counts, model fingerprint); returns the JSON.

        ``path`` may end in ``.json`` or ``.safetensors`` (either names the pair); any other name is kept whole
        (``speakers.v2`` -> ``speakers.v2.json``). Only an earlier enrollment pair is replaced, never another file,
        and each file is written whole (a temporary file, then a rename), the shifts first: the JSON records their
        SHA-256, so a pair left half-replaced by a crash is refused at load, not read wrong.

        Raises:
            SERError: when either file exists and is not an earlier enrollment file, or is a folder; for a path that
                cannot name the pair (a folder, a NUL, a name too long, under a file) or a folder that cannot be
                written.
        """
        json_path, weights_path = enrollment_pair(path, "save")
        try:
            for existing in (json_path, weights_path):
                _check_replaceable(existing, json_path)
            return self._write(json_path, weights_path)
        except OSError as error:  # a folder that cannot be written or made, a full disk, a read-only file system
            where = f" ({display_path(error.filename)!r})" if error.filename else ""
            raise SERError(f"cannot save enrollments to {shown_path(json_path.with_suffix(''))!r}: "
                           f"{error.strerror or error}{where}; expected a folder you can write (it is made if "
                           f"missing). Pass a path there.") from None

    def _write(self, json_path: Path, weights_path: Path) -> Path:
        from safetensors.numpy import save

        tensors, speakers = {}, []
        for index, entry in enumerate(self.speakers.values()):
            record = enrollment_summary(entry)
            if entry["adapted"]:
                record["tensor"] = f"offset.{index}"  # the name of files saved before shifts had a spread
                tensors.update(entry["shift"].tensors(record["tensor"]))
                for number, shift in enumerate(entry.get("copy_shifts") or []):
                    tensors.update(shift.tensors(f"offset.{index}.copy.{number}"))
            speakers.append(record)
        data = save(tensors or {"empty": np.zeros(1, dtype=np.float32)}, metadata={"format": ENROLLMENT_FORMAT})
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(weights_path, data)
        document = {"format": 1, "adaptation": self.fingerprint, "weights_sha256": hashlib.sha256(data).hexdigest(),
                    "speakers": speakers}
        text = json.dumps(document, indent=2, ensure_ascii=False)
        if not is_utf8(text):  # an id from a file name that is not UTF-8: \udcNN escapes, read back exactly
            text = json.dumps(document, indent=2)
        atomic_write_text(json_path, text + "\n")
        return json_path

    def load(self, path: str | os.PathLike) -> list[str]:
        """Add the enrollments saved at ``path`` (``.json`` + ``.safetensors``); returns the speaker ids.

        Every record is checked before any is added, so a bad file changes nothing.

        Raises:
            SERError: naming the file and what is wrong (unreadable, another model, a bad record or shift).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load

        json_path, weights_path = enrollment_pair(path, "load")
        shown = shown_path(json_path.with_suffix(""))
        again = "enroll the speakers again."
        try:
            document = read_json(json_path, fix="", max_bytes=MAX_ENROLLMENT_BYTES)  # the fix is said once, below
        except (OSError, ModelError) as error:
            raise SERError(f"enrollments {shown!r}.json cannot be read ({error}); {again}") from None
        if type(document.get("format")) is not int or document["format"] != 1 or \
                not isinstance(document.get("speakers"), list):  # true and 1.0 equal 1 too
            raise SERError(f"enrollments {shown!r}.json is not an enrollment file of this version (format "
                           f"{document.get('format')!r}, expected 1, with a list of speakers); {again}")
        try:  # no larger than the shifts its .json names can take: a link to /dev/zero must not fill the memory
            data = read_bounded(weights_path, self._weights_bytes(document["speakers"]), fix="",
                                what="the offsets (and score spreads) its .json names")
            tensors = load(data)
        except (OSError, SafetensorError, ModelError) as error:
            raise SERError(f"enrollments {shown!r}.safetensors cannot be read ({error}); {again}") from None
        if document.get("adaptation") != self.fingerprint:
            raise SERError(f"enrollments {shown!r} were made with another model (adaptation "
                           f"{document.get('adaptation')}, this model {self.fingerprint}); enroll the speakers again "
                           f"with this model.")
        digest = document.get("weights_sha256")
        if digest is not None and digest != hashlib.sha256(data).hexdigest():
            raise SERError(f"enrollments {shown!r}: the .safetensors is not the one its .json was saved with (a save "
                           f"interrupted, or files of two saves); {again}")
        loaded, numbers = {}, {}
        for number, record in enumerate(document["speakers"]):
            speaker, entry, problem = self._loaded_entry(record, tensors)
            if entry is None:
                what = f"speaker {printable(speaker)[:80]!r} (record {number})" if speaker else f"record {number}"
                spread = "" if self.adaptation.spread_shrink is None else \
                    f" and a spread of shape (2, {len(self.adaptation.means)}) with scales above 0"
                problem = f": {problem}" if problem else ""
                raise SERError(f"enrollments {shown!r}: {what} has no usable offset or is malformed{problem} (expected a "
                               f"speaker id, a clip count, adapted true/false, at most {MAX_COPIES} distinct test-time "
                               f"copy names and, when adapted, a finite float32 "
                               f"offset of shape {self.adaptation.means.shape[1:]}{spread}, each value within "
                               f"{MAX_SHIFT:g}); {again}")
            if speaker in loaded:  # ids saved apart before they had one form (NFC), or a file edited by hand
                raise SERError(f"enrollments {shown!r}: records {numbers[speaker]} and {number} both name speaker "
                               f"{printable(speaker)[:80]!r} (ids are compared in one form: NFC, without invisible "
                               f"marks), so one would silently replace the other; remove one of the records, or "
                               f"{again}")
            loaded[speaker], numbers[speaker] = entry, number
        self.speakers.update(loaded)
        return list(loaded)

    def _weights_bytes(self, records: list) -> int:
        """The most bytes the ``.safetensors`` of ``records`` can hold: a float32 shift (an offset and a spread of
        the class scores) per adapted speaker and per test-time copy of theirs (at most :data:`MAX_COPIES`, whatever a
        record claims: a longer list makes the record malformed, see :meth:`_loaded_entry`), each with its header
        entries, and the header's own metadata."""
        shift = 4 * (int(np.prod(self.adaptation.means.shape[1:])) + 2 * len(self.adaptation.means)) + 512
        copies = [record.get("copies") if isinstance(record, dict) else None for record in records]
        return 2**16 + shift * sum(1 + (min(len(names), MAX_COPIES) if isinstance(names, list) else 0)
                                   for names in copies)

    def _loaded_entry(self, record, tensors) -> tuple[str | None, dict | None, str | None]:
        """``(speaker, entry, problem)`` from one saved record: the entry None when the record or its shifts are
        unusable, and then what is wrong with a shift (None for a malformed record)."""
        if not isinstance(record, dict) or not isinstance(record.get("speaker"), str) or not record["speaker"]:
            return None, None, None
        speaker, copies = speaker_text(record["speaker"]), record.get("copies") or []  # files from before NFC ids
        if not speaker:
            return None, None, None
        clips = record.get("clips")
        if not isinstance(record.get("adapted"), bool) or not isinstance(clips, int) or isinstance(clips, bool) or \
                clips < 0 or not isinstance(copies, list) or not all(isinstance(name, str) for name in copies) or \
                len(copies) > MAX_COPIES or len(set(copies)) < len(copies):
            return speaker, None, None
        name = str(record.get("tensor", ""))
        names = [name, *(f"{name}.copy.{number}" for number in range(len(copies)))] if record["adapted"] else []
        try:
            shifts = [self.adaptation.shift_from_tensors(tensors, tensor) for tensor in names]
        except ValueError as error:
            return speaker, None, str(error)
        entry = {**{k: v for k, v in record.items() if k != "tensor"}, "speaker": speaker}
        entry["shift"] = shifts[0] if shifts else None
        if copies and shifts:
            entry["copy_shifts"] = shifts[1:]
        return speaker, entry, None


def _speaker_head(adaptation, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    """The standard head for an enrollment: the speaker's shift folded in, or the global head if not adapted."""
    return adaptation.speaker_head(entry["shift"]) if entry["adapted"] else adaptation.global_head


def speaker_id(speaker: Any) -> str:
    """A speaker id as enrollments keep it: a non-empty string (an integer id is taken as its digits), in the form
    :func:`~ser_hf.names.speaker_text` gives (NFC, no invisible characters or surrounding whitespace), so
    ``enroll("José", ...)`` and ``predict(..., speaker="Jose\u0301")`` name one speaker, as in a batch job.

    ``None`` means "no speaker" everywhere else (``predict(speaker=None)``), so it cannot be an id either.
    """
    text = "" if isinstance(speaker, bool) or not isinstance(speaker, (str, int, np.integer)) else \
        speaker_text(str(speaker))
    if not text:
        raise SERError(f"a speaker id must be a non-empty string (or an integer), got {printable(repr(speaker))[:80]}; "
                       f"name the speaker, e.g. enroll('alice', clips), or pass speaker=None for the global model.")
    return text


def _check_replaceable(existing: Path, json_path: Path) -> None:
    """Refuse to overwrite a folder or a file that is not an earlier enrollment file."""
    if not existing.exists() and not existing.is_symlink():
        return
    if existing.is_dir():
        raise SERError(f"cannot save enrollments to {display_path(existing)!r}: it is a folder; pass a file name "
                       f"(e.g. {display_path(existing / 'speakers')!r}).")
    if not _is_enrollment_file(existing):
        raise SERError(f"cannot save enrollments to {display_path(json_path.with_suffix(''))!r}: "
                       f"{display_path(existing)!r} exists and is not an enrollment file, so it is not replaced; "
                       f"pass another name.")


def _is_enrollment_file(path: Path) -> bool:
    from safetensors import SafetensorError, safe_open

    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="numpy") as handle:
                return (handle.metadata() or {}).get("format") == ENROLLMENT_FORMAT
        document = read_json(path, fix="", max_bytes=MAX_ENROLLMENT_BYTES)
        return document.get("format") == 1 and "adaptation" in document and "speakers" in document
    except (OSError, SafetensorError, ModelError):
        return False
