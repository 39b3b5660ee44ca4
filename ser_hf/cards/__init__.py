"""Model cards for ser_hf checkpoints: a card-data dataclass, one Jinja template, Hub-valid metadata.

:class:`SERModelCardData` (:mod:`~ser_hf.cards.data`) holds what a card says, filled by :func:`card_from_run` or
:func:`card_from_release` from facts gathered in :mod:`~ser_hf.cards.facts`; :mod:`~ser_hf.cards.tables` formats
every table in Python; :func:`write_model_card` (:mod:`~ser_hf.cards.files`) renders the template into
``README.md`` beside the checkpoint. A released model's card is rendered once, at release time, and shipped
beside its head (:mod:`~ser_hf.cards.release`).

Example:
    ```python
    >>> from ser_hf.cards import SERModelCardData, card_from_run, write_model_card
    >>> card = card_from_run(run, split, report, checkpoint, license="cc-by-nc-sa-4.0",  # doctest: +SKIP
    ...                      model_id="me/ser-rav4")
    >>> write_model_card(checkpoint, card)  # doctest: +SKIP
    PosixPath('outputs/rav4/README.md')

    ```
"""

from __future__ import annotations

from ser_hf.cards.data import SER_HF_CITATION, SERModelCardData, card_from_release, card_from_run, ser_hf_citation
from ser_hf.cards.facts import (
    PRESET_HUB_IDS,
    non_default_hyperparameters,
    training_log_from_log_history,
    training_log_from_trainer_state,
    training_log_of,
)
from ser_hf.cards.files import (
    CARD_DATA_FILE,
    TEMPLATE_NAME,
    add_to_model_card,
    card_data_file,
    license_card_fields,
    render_model_card,
    save_model_card,
    template_path,
    update_model_card,
    validate_license,
    validate_license_terms,
    write_model_card,
)
from ser_hf.cards.tables import LANGUAGE_NAMES

__all__ = [
    "CARD_DATA_FILE", "LANGUAGE_NAMES", "PRESET_HUB_IDS", "SER_HF_CITATION", "TEMPLATE_NAME", "SERModelCardData",
    "add_to_model_card", "card_data_file", "card_from_release", "card_from_run", "license_card_fields",
    "non_default_hyperparameters", "render_model_card", "save_model_card", "ser_hf_citation", "template_path", "training_log_from_log_history",
    "training_log_from_trainer_state", "training_log_of", "update_model_card", "validate_license",
    "validate_license_terms", "write_model_card",
]
