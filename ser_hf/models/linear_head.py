"""What the standard audio-classification head computes from pooled states, in numpy.

An ``AutoModelForAudioClassification`` with ``use_weighted_layer_sum`` ends in the head
``classifier(mean_t(projector(sum_l w_l h_l)))`` with ``w = softmax(layer_weights)``. Every step after the layer
states is linear, so the head gives the same logits on the frame-mean (pooled) states of every layer
(:mod:`ser_hf.models.pooling`). This module evaluates that head from its tensors (a dict of ``layer_weights``,
``projector.weight``, ``projector.bias``, ``classifier.weight``, ``classifier.bias``) without torch: the probe fits
in :mod:`ser_hf.training.linear_probe` and speaker enrollment (:mod:`ser_hf.models.adaptive_head`) both use it.

Example:
    ```python
    >>> import numpy as np
    >>> from ser_hf.models.linear_head import head_logits, softmax
    >>> head = {"layer_weights": np.zeros(2), "projector.weight": np.eye(2, 3), "projector.bias": np.zeros(2),
    ...         "classifier.weight": np.eye(2), "classifier.bias": np.zeros(2)}
    >>> softmax(head_logits(head, np.ones((1, 2, 3)))).round(2).tolist()
    [[0.5, 0.5]]

    ```
"""

from __future__ import annotations

import numpy as np


def head_mix(tensors: dict[str, np.ndarray]) -> np.ndarray:
    """The convex layer mix a standard head's ``layer_weights`` encode (their softmax)."""
    logits = np.asarray(tensors["layer_weights"], dtype=np.float64)
    mix = np.exp(logits - logits.max())
    return mix / mix.sum()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(clips, labels)`` logits."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of ``(clips, labels)`` logits: what test-time copies average over a clip's versions."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def mean_log_probability(log_probabilities) -> np.ndarray:
    """Probabilities from several versions of the same clips (a clip and its test-time copies): the softmax of
    their mean log-probability. For a linear head this is the head on the mean of the versions' states."""
    return softmax(sum(log_probabilities) / len(log_probabilities))


def head_logits(tensors: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """What the standard HF head with these tensors computes from pooled ``(clips, layers, hidden)`` states."""
    mixed = np.einsum("nlh,l->nh", features, head_mix(tensors))
    projected = mixed @ np.asarray(tensors["projector.weight"]).T + tensors["projector.bias"]
    return projected @ np.asarray(tensors["classifier.weight"]).T + tensors["classifier.bias"]
