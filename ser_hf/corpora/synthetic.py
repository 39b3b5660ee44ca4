"""Synthetic: a small learnable emotional-speech corpus that ser_hf generates itself (NOT real speech).

- What: speech-like voiced signals (harmonic sources through formant filters, fricative-like noise)
  from 8 synthetic speakers (alternating genders), 4 emotions x 6 clips each (192 clips, 1.5-3 s),
  whose emotions differ, relative to each speaker's baseline and with overlapping distributions, in
  pitch level and range, tempo, loudness and spectral tilt (harmonic sources through formant filters). See :mod:`ser_hf.corpora.synthetic_speech`.
- Why: the built-in default of ``ser-hf demo`` and of tests, on machines with no corpus and no
  network. Its accuracies say nothing about real emotion recognition; never report them as such.
- Licence: generated data, no restrictions. No citation.
- Layout: ``manifest.csv`` (path, label, speaker, gender) and the WAV files, written into ``data_dir``
  (default ``$SER_HF_CACHE/synthetic`` or ``~/.cache/ser_hf/synthetic``) on first use.
- Labels: canonical names already (neutral, happy, sad, angry).
- Protocol: speaker-grouped folds, like any corpus without its own.
"""

from __future__ import annotations

from pathlib import Path

from ser_hf._io import cache_root
from ser_hf.corpora import manifest
from ser_hf.corpora.base import Corpus


def default_dir() -> Path:
    return cache_root() / "synthetic"


def prepare(data_dir: Path) -> None:
    """Generate the default synthetic corpus in ``data_dir`` unless it is already there."""
    # Imported here: the generator needs scipy.signal, which listing a corpus does not.
    from ser_hf.corpora.synthetic_speech import make_synthetic_corpus

    make_synthetic_corpus(data_dir)


CORPUS = Corpus(
    name="synthetic",
    list_clips=manifest.list_clips,
    features=manifest.manifest_features,
    prepare=prepare,
    default_dir=default_dir,
    licence="generated data, no restrictions.",
    doc=__doc__,
)
