"""Save a classifier from :func:`~ser_hf.models.factory.build_model` as a standard checkpoint folder.

Apart from the factory because saving is its own concern: which folders may receive a checkpoint (never the backbone's,
never another output's), links detached before transformers rewrites files, and a check that safetensors weights came
out. :mod:`ser_hf.models.factory` re-exports these names, so their old import paths keep working.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import PreTrainedModel

from ser_hf._io import default_permissions, detach_for_rewrite
from ser_hf._output_folders import check_output_folder, refuse_sources
from ser_hf.errors import ModelError
from ser_hf.models.whisper_lengths import check_whisper_lengths
from ser_hf.paths import path_text

__all__ = ["CHECKPOINT_WRITES", "save_checkpoint"]

#: What save_checkpoint has transformers write (plain open-for-write, which follows links): detached first.
CHECKPOINT_WRITES = ("config.json", "preprocessor_config.json", "generation_config.json", "*.safetensors",
                     "*.safetensors.index.json")


class _ClassifierArchitectures:
    """A ``config.json`` marker value: the ``architectures`` of an audio classifier (what a checkpoint of ours holds,
    never a bare backbone's ``WhisperModel``)."""

    @staticmethod
    def matches(found) -> bool:
        return isinstance(found, list) and any(str(name).endswith(("ForAudioClassification",
                                                                   "ForSequenceClassification")) for name in found)


#: Files beside a classifier's config.json that make the folder more than a checkpoint: a run's record, card and test
#: report (saving weights alone there would leave them describing the earlier model), an ONNX export, a baseline, a
#: speaker model. From the Python API such a folder is refused; ``ser-hf train`` replaces a run's as a whole.
_OTHER_OUTPUTS = ("ser_hf_run.json", "ser_hf_card.json", "eval/report.json", "ser_hf_export.json", "model.onnx",
                  "baseline_config.json", "ser_hf_speaker.json")


def save_checkpoint(model: PreTrainedModel, feature_extractor, out_dir: str | os.PathLike,
                    replace: bool = False) -> Path:
    """Save ``model`` (safetensors) and ``feature_extractor`` so that ``pipeline("audio-classification")`` loads them.

    Args:
        model: A model from :func:`~ser_hf.models.factory.build_model` (trained or not).
        feature_extractor: Its feature extractor.
        out_dir: Directory to write (created if missing): new, empty or an earlier classifier checkpoint (its
            config.json names an audio classifier, and nothing of another output is beside it: a run's record or
            card, an export, a baseline; any classifier's, ser_hf cannot tell whose), never the folder the model was
            built from (its backbone) nor a folder of other files.
        replace: ``out_dir`` was checked by the caller (a run's ``output_dir``, which may hold an earlier run's
            reports); the model's own folder is refused all the same.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        ModelError: if ``out_dir`` is refused (named, with the fix), if a Whisper model and its feature extractor
            disagree on the input length (the checkpoint would not run), or if no safetensors weights were written.

    Example:
        >>> save_checkpoint(model, extractor, "out/ser-model")  # doctest: +SKIP
        >>> from transformers import pipeline
        >>> pipeline("audio-classification", model="out/ser-model")(wave)  # doctest: +SKIP
    """
    out_dir = path_text(out_dir, "out_dir", error=ModelError, refuse_empty=True)  # bytes too, never "" (the cwd)
    check_whisper_lengths(model.config, feature_extractor)
    source = getattr(model, "ser_hf_source", None) or Path(str(getattr(model, "name_or_path", "") or "")).expanduser()
    sources = [source] if str(source) not in ("", ".") and source.is_dir() else []  # a local backbone, not a Hub id
    if replace:
        refuse_sources(out_dir, sources, "out_dir", "a checkpoint")
    else:
        check_output_folder(out_dir, argument="out_dir", what="a checkpoint", overwrite=True, sources=sources,
                            marker=[("config.json", {"architectures": _ClassifierArchitectures()})],
                            foreign=_OTHER_OUTPUTS)
    out = Path(out_dir).expanduser()
    # A link left in an earlier checkpoint (or a `cp -al` backup's hard link) must not carry the new files elsewhere.
    detach_for_rewrite(out, CHECKPOINT_WRITES)
    # safetensors needs no pickle to load; transformers 5 always writes it, 4.x needs the flag.
    model.save_pretrained(out, safe_serialization=True)
    feature_extractor.save_pretrained(out)
    weights = sorted(out.glob("*.safetensors"))
    if not weights:
        raise ModelError(f"save_checkpoint: no *.safetensors file was written to {str(out)!r}; check disk space.")
    default_permissions(*weights)  # safetensors writes them 0600: a checkpoint is for others to read too
    return out
