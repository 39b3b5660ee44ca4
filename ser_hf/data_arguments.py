"""The data arguments of every run: which corpus, which emotions, how it is split and how the audio is cleaned.

:class:`DataArguments` is the first of the three ``HfArgumentParser`` groups (the model and training groups are in
:mod:`ser_hf.training.arguments`). It stands apart from them because it needs nothing of training (nor of
``datasets``): a checkpoint folder records these settings (``ser_hf_run.json``, see :mod:`ser_hf.checkpoint`) and
loading a model reads them back without importing the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ser_hf.audio import AudioPreprocessor
from ser_hf.audio.clean import CLIP_SECONDS
from ser_hf.errors import SERError
from ser_hf.ranges import FOLDS, POSITIVE, SEED, SHARE, UNIT, Range, check_ranges

__all__ = ["MULTI_CORPUS_EMOTIONS", "DataArguments", "help_metadata"]


def help_metadata(text: str, **extra) -> dict:
    """A dataclass field's metadata for ``HfArgumentParser``: its help text plus argparse extras (``choices``)."""
    return {"help": text, **extra}


#: The label set of a multi-corpus run unless ``emotions`` says otherwise: the four emotions every corpus has.
MULTI_CORPUS_EMOTIONS = "4class"


def _items(text: str) -> list[str]:
    """The non-empty items of a comma-separated setting, stripped."""
    return [item.strip() for item in text.split(",") if item.strip()]


@dataclass
class DataArguments:
    """Which corpus, which emotions, how it is split and how the audio is cleaned."""

    corpus: str = field(default="synthetic", metadata=help_metadata(
        "Corpus name (urdu, ravdess, emodb, crema_d, tess, savee, iemocap, folder, manifest, synthetic), or several "
        "comma-separated (e.g. 'urdu,ravdess'; a YAML list in a recipe) for one model trained on all of them: "
        "speakers are prefixed by their corpus, folds are taken within each corpus, and training counts every "
        "corpus the same (each corpus's emotions weigh equally: in the probe's fit and inner CV, the gradient "
        "probe's loss and early stopping, and fine-tuning's class-weighted loss and balanced sampler)."))
    data_dir: str | None = field(default=None, metadata=help_metadata(
        "Folder holding the corpus (a manifest file for 'manifest'); 'synthetic' generates one if empty. With "
        "several corpora, one folder per corpus, comma-separated in the same order (or a YAML list)."))
    emotions: str | None = field(default=None, metadata=help_metadata(
        "Keep only these emotions: '4class', 'basic7', 'ravdess8' or a comma-separated list. Default: all; with "
        "several corpora '4class' (neutral, happy, sad, angry: the label set the corpora share)."))
    label_map: str | None = field(default=None, metadata=help_metadata(
        "Label merges or renames as 'from=to,from=to', e.g. 'excited=happy'. Default: the corpus's own."))
    speaker_pattern: str | None = field(default=None, metadata=help_metadata(
        "For corpus 'folder': a regex whose first group is the speaker id in each file name."))
    strict: bool = field(default=True, metadata=help_metadata(
        "Fail on unusable files; with --strict false they are skipped and every one is reported."))
    num_folds: int = field(default=5, metadata=help_metadata(
        "Speaker-grouped folds for corpora without a protocol of their own (RAVDESS and IEMOCAP have one)."))
    fold_seed: int = field(default=0, metadata=help_metadata(
        "Seed of the speaker-to-fold assignment and of the speakers 'ser-hf train' holds out for test and validation "
        "(as 'ser-hf data split --seed'); seed seeds training, not the split."))
    test_size: float = field(default=0.2, metadata=help_metadata(
        "'ser-hf train': share of clips (by whole speakers) held out for the final test report, at most 0.5 (the "
        "part is one of at least 2 speaker-grouped folds). Not used where a manifest's split column or "
        "eval_split_name gives the test part."))
    validation_size: float = field(default=0.15, metadata=help_metadata(
        "Share of training clips (by whole speakers) held out for model selection and early stopping: at most half "
        "of the clips the test part leaves, so test_size + validation_size stays below 1."))
    trim_db: float | None = field(default=None, metadata=help_metadata(
        "Trim leading/trailing audio quieter than this many dB below the peak. Default: no trimming."))
    denoise: float | None = field(default=None, metadata=help_metadata(
        "Stationary noise reduction strength in [0, 1]. Default: off."))
    normalize: str | None = field(default=None, metadata=help_metadata(
        "Level normalisation: 'peak' or 'loudness' (RMS). Default: none.", choices=[None, "peak", "loudness"]))
    max_duration: float | None = field(default=None, metadata=help_metadata(
        "Keep at most this many seconds of each clip. Default: whole clips."))

    # --- A Hugging Face `datasets` dataset instead of a corpus (see ser_hf.corpora.hf_dataset) ---
    dataset_name: str | None = field(default=None, metadata=help_metadata(
        "Your own data as a `datasets` dataset instead of corpus/data_dir: a Hub id, a save_to_disk folder, a folder "
        "(or file) of parquet/arrow tables, or an audiofolder directory. Audio is read undecoded (embedded bytes or "
        "paths) and decoded by ser_hf."))
    dataset_config_name: str | None = field(default=None, metadata=help_metadata(
        "The dataset's configuration name, for datasets that have several."))
    train_split_name: str = field(default="train", metadata=help_metadata(
        "The dataset split trained on: 'ser-hf train' holds speakers out of it for test and validation (unless "
        "eval_split_name is set), 'ser-hf cv' makes its folds from it."))
    eval_split_name: str | None = field(default=None, metadata=help_metadata(
        "'ser-hf train': use this dataset split as the test part instead of holding speakers out of the training "
        "split; it must share no speaker with the training split. Default: none."))
    audio_column_name: str = field(default="audio", metadata=help_metadata(
        "The dataset column holding the audio (embedded bytes or paths)."))
    label_column_name: str = field(default="label", metadata=help_metadata(
        "The dataset column holding the emotion labels (ClassLabel ids or strings; map unknown ones with label_map)."))
    speaker_column_name: str | None = field(default="speaker", metadata=help_metadata(
        "The dataset column holding speaker ids (absent: speakers unknown, see allow_random_split)."))
    gender_column_name: str | None = field(default="gender", metadata=help_metadata(
        "The dataset column holding genders (male/female/M/F; absent: unknown)."))
    allow_random_split: bool = field(default=False, metadata=help_metadata(
        "A dataset without speaker ids: split its clips at random (stratified by emotion) instead of refusing. "
        "Reports and cards then say 'random split (speakers may overlap)': test voices may also be in training, so "
        "the scores are optimistic."))
    streaming: bool = field(default=False, metadata=help_metadata(
        "'ser-hf train --mode finetune' on dataset_name: read the training split as an IterableDataset, shard by "
        "shard (bounded memory; under accelerate launch each process reads its own shards). Needs max_steps; the "
        "label set comes from emotions or the label column's ClassLabel; eval_split_name, if set, is the test part."))

    #: What each numeric field accepts (see :mod:`ser_hf.ranges`), checked in ``__post_init__``.
    RANGES: ClassVar[dict[str, Range]] = {
        "num_folds": FOLDS, "fold_seed": SEED, "test_size": SHARE, "validation_size": SHARE,
        "trim_db": POSITIVE, "denoise": UNIT, "max_duration": CLIP_SECONDS,
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.dataset_name is not None:
            if self.corpus not in ("synthetic", self.dataset_name) or self.data_dir is not None:
                raise SERError(f"dataset_name ({self.dataset_name!r}) replaces corpus and data_dir, but corpus="
                               f"{self.corpus!r} and data_dir={self.data_dir!r} are set too; pass only one of them.")
            self.corpus = self.dataset_name  # reports, records and cards name the dataset as the run's data
        self.label_map_dict()  # a malformed label_map fails at parse time, naming it
        if self.is_multi_corpus():
            self.emotions = self.emotions or MULTI_CORPUS_EMOTIONS
            if self.data_dir is not None:
                self.sources()  # a count mismatch fails at parse time, naming both settings

    def corpora(self) -> list[str]:
        """The registered corpus names (one for a single-corpus run; none for a ``datasets`` dataset)."""
        return [] if self.dataset_name is not None else _items(self.corpus)

    def is_multi_corpus(self) -> bool:
        """Whether ``corpus`` names several corpora."""
        return len(self.corpora()) > 1

    def sources(self) -> dict[str, str]:
        """Corpus name -> its folder, pairing the comma-separated ``corpus`` and ``data_dir`` in order.

        Raises:
            SERError: ``data_dir`` is unset, the two lists differ in length, or a corpus is named twice.
        """
        corpora, folders = self.corpora(), _items(self.data_dir or "")
        if not folders:
            raise SERError(f"data_dir is not set: pass --data_dir with one folder per corpus of corpus={self.corpus!r}.")
        if len(folders) != len(corpora):
            error = SERError(
                f"corpus names {len(corpora)} corpora ({corpora}) but data_dir names {len(folders)} folders "
                f"({folders}); give one folder per corpus, comma-separated in the same order, e.g. "
                f"corpus: urdu,ravdess with data_dir: data/urdu,data/ravdess."
            )
            error.field = "data_dir"  # lets parse_run say where the value came from
            raise error
        repeated = sorted({name for name in corpora if corpora.count(name) > 1})
        if repeated:
            raise SERError(f"corpus names {repeated} more than once ({self.corpus!r}); name each corpus once.")
        return dict(zip(corpora, folders))

    def label_map_dict(self) -> dict[str, str] | None:
        """``label_map`` parsed from 'from=to,...' (``None`` when unset).

        Raises:
            SERError: an entry that is not 'from=to', has an empty side, maps a label twice (in any case and
                spacing) onto two emotions, or maps onto something that is not an emotion (a source matching no
                label of the corpus is warned about when the corpus loads).
        """
        if not self.label_map:
            return None
        from ser_hf.corpora.label_maps import check_label_map, parse_label_map_text  # corpora load datasets: lazily

        mapping = parse_label_map_text(self.label_map, "label_map", self._label_map_error)
        try:
            check_label_map(mapping)
        except SERError as err:
            raise self._label_map_error(str(err)) from err
        return mapping

    @staticmethod
    def _label_map_error(message: str) -> SERError:
        error = SERError(message)
        error.field = "label_map"  # lets parse_run say where the value came from
        return error

    def dataset_source(self):
        """The :class:`~ser_hf.corpora.hf_dataset.DatasetSource` that ``dataset_name`` and the column names describe."""
        from ser_hf.corpora.hf_dataset import DatasetSource

        return DatasetSource(self.dataset_name, self.dataset_config_name, self.audio_column_name,
                             self.label_column_name, self.speaker_column_name, self.gender_column_name)

    def preprocessor(self, sampling_rate: int) -> AudioPreprocessor:
        """The audio cleaning these arguments ask for, at the model's sampling rate."""
        return AudioPreprocessor(sampling_rate=sampling_rate, trim_db=self.trim_db, denoise=self.denoise,
                                 normalize=self.normalize, max_duration=self.max_duration)
