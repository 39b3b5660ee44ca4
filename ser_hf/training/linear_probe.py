"""The probe's default fit: a regularised linear model on a fixed layer mix, chosen by inner speaker CV.

The standard HF head computes ``classifier(projector(sum_l w_l h_l))`` on the frame-mean states (see
:mod:`ser_hf.training.probe`; :mod:`ser_hf.models.linear_head` evaluates it in numpy): with a fixed convex
mix ``w`` it is exactly a linear model on the mixed, standardised states. Such a model has a closed-form fit, so
instead of gradient steps with early stopping on a few validation speakers, this module:

1. builds a few candidate layer mixes (:data:`DEFAULT_LAYER_MIXES`): ``uniform``; ``balanced`` (each layer
   weighted by the inverse of its typical scale, so no layer dominates the sum because its states are larger);
   ``balanced-top`` (the same over the upper half of the layers, where emotion lives in most speech encoders);
   and, where a recipe asks for it (``probe_layer_mixes``), ``balanced-bottom`` (the same over the lower half:
   the more acoustic states, for speech far from what the encoder learnt, e.g. Urdu through the English-only
   whisper-tiny.en; not a default: ``benchmarks/layer_mixes.py`` finds it helping some configurations only);
2. fits class-balanced ridge regression on one-vs-rest targets (+1/-1), every regularisation strength
   of :data:`RIDGE_ALPHAS` at once from one SVD;
3. picks the mix and strength with the best pooled UA in a speaker-grouped inner CV on the training
   speakers only (never the test speakers), fits a softmax temperature on the same out-of-fold scores so
   ``pipeline()`` scores are usable probabilities, and refits on *all* training speakers;
4. folds mix, standardisation, weights and temperature into the head: ``layer_weights = log w``,
   projector rows ``0..K-1`` carry the linear model, the classifier picks them out.

Training copies of the clips (speed-perturbed or noisy ones: ``probe_speed_copies``, ``probe_noise_copies``) join
the rows every fit trains on, in the same inner fold as their clip, and never the rows that are scored: the inner
CV's UA is that of unaltered clips, as a user's clips are.

Trained on several corpora at once (``corpus: [urdu, ravdess]``), every corpus counts the same: each (corpus,
emotion) cell gets the same total weight in the fit, and the inner CV scores the mean of the corpora's pooled UAs.
Balancing emotions over the pooled clips instead gave the larger corpus more say in the fit and in the choice of
mix and strength: in the URDU + RAVDESS models it cost URDU 7.0 (whisper-base) and 5.4 (whisper-tiny.en) points of
in-corpus UA, on average over 5 fold assignments (``benchmarks/corpus_balance.py``).

Ridge is kept over multinomial logistic regression and shrinkage LDA on the same mixes, chosen the same way
(``benchmarks/probe_loss.py``, URDU's three configurations over 5 fold assignments x 3 inner seeds): logistic
regression lost on all three (by 0.2 to 5.2 points of mean pooled UA), LDA on two (by 1.1 and 2.3; +0.3 on the third),
and both took 5-21 times ridge's time to choose and refit.

What a head computes from its tensors (:func:`head_mix`, :func:`head_logits`, :func:`softmax`) lives in
:mod:`ser_hf.models.linear_head`, below training, and is re-exported here so its old import path keeps working.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ser_hf.errors import SERError
from ser_hf.models.linear_head import head_logits, head_mix, softmax

__all__ = [
    "DEFAULT_LAYER_MIXES", "LAYER_MIXES", "RIDGE_ALPHAS", "TEMPERATURES", "LinearFit", "balanced_weights",
    "corpora_to_balance", "corpus_balanced_ua", "fit_chosen", "fit_linear", "head_logits", "head_mix", "head_tensors",
    "inner_candidates", "layer_mixes", "load_into_head", "load_tensors_into_head", "ridge_path", "softmax",
]

logger = logging.getLogger(__name__)

#: Ridge strengths tried by the inner CV (on standardised inputs, in units of weighted clips).
RIDGE_ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
#: Softmax temperatures tried on the inner out-of-fold scores.
TEMPERATURES = tuple(np.geomspace(0.1, 100.0, 61))
#: A softmax logit this low gives a weight of exactly 0 in float32: how a mix leaves a layer out.
_ABSENT_LAYER_LOGIT = -1e4


#: Every layer mix a fit can choose from, in the order the inner CV scores them (the first of equal UAs wins).
LAYER_MIXES = ("uniform", "balanced", "balanced-top", "balanced-bottom")
#: The mixes the inner CV chooses from unless a recipe names others (``probe_layer_mixes``).
DEFAULT_LAYER_MIXES = ("uniform", "balanced", "balanced-top")


def layer_mixes(features: np.ndarray, names=LAYER_MIXES) -> dict[str, np.ndarray]:
    """The convex layer mixes ``names`` (of :data:`LAYER_MIXES`, in its order) for ``(clips, layers, hidden)``
    features, each summing to 1. The top half starts at layer ``layers // 2``, the bottom half ends with it."""
    unknown = sorted(set(names) - set(LAYER_MIXES))
    if unknown or not names:
        raise SERError(f"layer mixes must be some of {list(LAYER_MIXES)}; got {list(names)}.")
    layers = features.shape[1]
    spread = np.sqrt(features.var(axis=0).mean(axis=1)) + 1e-8  # typical scale of each layer
    balanced = 1.0 / spread
    top, bottom = balanced.copy(), balanced.copy()
    top[: layers // 2] = 0.0
    bottom[(layers + 1) // 2:] = 0.0  # odd counts share the middle layer with the top half
    mixes = {"uniform": np.ones(layers), "balanced": balanced, "balanced-top": top, "balanced-bottom": bottom}
    return {name: mixes[name] / mixes[name].sum() for name in LAYER_MIXES if name in names}


@dataclass
class LinearFit:
    """A linear model on mixed, standardised states: ``logits = temperature * (z @ weight.T + bias)``."""

    mix: np.ndarray  # (layers,)
    mean: np.ndarray  # (hidden,) of the mixed states
    scale: np.ndarray  # (hidden,)
    weight: np.ndarray  # (labels, hidden)
    bias: np.ndarray  # (labels,)
    temperature: float = 1.0

    def logits(self, features: np.ndarray) -> np.ndarray:
        z = (np.einsum("nlh,l->nh", features, self.mix) - self.mean) / self.scale
        return self.temperature * (z @ self.weight.T + self.bias)


def balanced_weights(labels: np.ndarray, num_labels: int, corpora: np.ndarray | None = None,
                     speakers: np.ndarray | None = None, speaker_power: float = 0.0) -> np.ndarray:
    """Sample weights giving every emotion (of every corpus, when ``corpora`` names each clip's) the same total,
    summing to the number of clips: the linear fit's weights, and the loss weights of every other training mode
    (the gradient probe, :class:`~ser_hf.training.trainer.SERTrainer`), so all count corpora and emotions alike.

    With ``speakers`` and ``speaker_power`` p > 0, an emotion's total is shared among its speakers too: each clip of a
    speaker with n clips of that emotion weighs ``n**-p`` before the emotion is scaled to its total (p = 1: every
    speaker of an emotion counts the same; p = 0: every clip does)."""
    cells = labels if corpora is None else \
        np.unique(np.asarray(corpora).astype(str), return_inverse=True)[1].reshape(-1) * num_labels + labels
    counts = np.bincount(cells).astype(np.float64)
    if speakers is None or speaker_power == 0:
        return len(labels) / (np.count_nonzero(counts) * counts[cells])
    speaker_ids = np.unique(np.asarray(speakers).astype(str), return_inverse=True)[1].reshape(-1)
    pairs = np.unique(np.stack([cells, speaker_ids], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
    raw = np.bincount(pairs).astype(np.float64)[pairs] ** -float(speaker_power)
    return len(labels) / np.count_nonzero(counts) * raw / np.bincount(cells, weights=raw)[cells]


def corpora_to_balance(corpora, clips: int) -> np.ndarray | None:
    """Each clip's corpus as an array, or None when the clips come from one corpus (or none is named)."""
    if corpora is None:
        return None
    corpora = np.asarray(corpora, dtype=object)
    if corpora.shape != (clips,):
        raise SERError(f"corpora must name the corpus of each of the {clips} clips; got "
                       f"{corpora.shape[0] if corpora.ndim else 'one value'}.")
    corpora = np.array([str(corpus) for corpus in corpora], dtype=object)  # None or numbers are names too
    return corpora if len(set(corpora.tolist())) > 1 else None


def corpus_balanced_ua(labels: np.ndarray, predictions: np.ndarray, num_labels: int,
                       corpora: np.ndarray | None) -> float:
    """The pooled UA, or with ``corpora`` (several) the mean of the corpora's pooled UAs: what the inner CV
    maximises, and the gradient probe's early-stopping score."""
    if corpora is None:
        return _pooled_ua(labels, predictions, num_labels)
    return float(np.mean([_pooled_ua(labels[corpora == corpus], predictions[corpora == corpus], num_labels)
                          for corpus in sorted(set(corpora.tolist()))]))


def ridge_path(z: np.ndarray, labels: np.ndarray, num_labels: int, alphas=RIDGE_ALPHAS, corpora=None,
               speakers=None, speaker_power: float = 0.0):
    """Class-balanced ridge on +1/-1 targets for every alpha: a list of ``(weight, bias)``.

    The intercept is not penalised (features are centred with the sample weights first); one SVD
    serves every alpha. With ``corpora`` (each row's corpus), every (corpus, emotion) cell weighs the same;
    ``speakers`` (each row's) and ``speaker_power`` share each cell among its speakers (:func:`balanced_weights`).
    """
    sample = balanced_weights(labels, num_labels, corpora, speakers, speaker_power)
    targets = np.where(np.eye(num_labels)[labels] > 0, 1.0, -1.0)
    total = sample.sum()
    z_mean = sample @ z / total
    t_mean = sample @ targets / total
    root = np.sqrt(sample)[:, None]
    u, s, vt = _svd((z - z_mean) * root)
    projected = u.T @ ((targets - t_mean) * root)
    path = []
    for alpha in alphas:
        weight = (vt.T @ ((s / (s**2 + alpha))[:, None] * projected)).T  # (labels, hidden)
        path.append((weight, t_mean - weight @ z_mean))
    return path


def _svd(matrix: np.ndarray):
    """Thin SVD; LAPACK's fast divide-and-conquer driver can fail to converge on rank-deficient inputs (seen
    on states with directions projected out), so the slower QR-iteration driver is the fallback."""
    try:
        return np.linalg.svd(matrix, full_matrices=False)
    except np.linalg.LinAlgError:
        import scipy.linalg

        return scipy.linalg.svd(matrix, full_matrices=False, lapack_driver="gesvd")


def _standardise(mixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return mixed.mean(axis=0), mixed.std(axis=0) + 1e-5


def _pooled_ua(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> float:
    recalls = [np.mean(predictions[labels == k] == k) for k in range(num_labels) if np.any(labels == k)]
    return float(np.mean(recalls))


def _inner_folds(labels: np.ndarray, speakers: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    from ser_hf.splits import grouped_kfold

    n_speakers = len(set(speakers.tolist()))
    if n_speakers >= 2:  # scikit-learn's folds, except where a small corpus would make it raise or leave one empty
        return grouped_kfold(labels, speakers, min(folds, n_speakers), seed, setting="probe_inner_folds")
    logger.warning("linear probe: all training clips come from one speaker, so the inner CV that picks the layer "
                   "mix and regularisation splits clips, not speakers; the choice may overfit that speaker.")
    counts = np.bincount(labels)[np.bincount(labels) > 0]
    n_splits = max(2, min(folds, int(counts.min())))
    if n_splits > counts.max():  # every emotion has one clip: nothing to stratify
        return list(KFold(n_splits=min(n_splits, len(labels)), shuffle=True, random_state=seed).split(labels))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(labels)),
                                                                                            labels))


def _temperature(scores: np.ndarray, labels: np.ndarray, num_labels: int, corpora=None) -> float:
    """The softmax temperature with the lowest class-balanced log loss on out-of-fold scores."""
    weights = balanced_weights(labels, num_labels, corpora)
    best, best_loss = 1.0, np.inf
    for temperature in TEMPERATURES:
        logits = temperature * scores
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(weights * log_probs[np.arange(len(labels)), labels]).sum()
        if loss < best_loss:
            best, best_loss = float(temperature), loss
    return best


def fit_linear(features: np.ndarray, labels: np.ndarray, speakers, num_labels: int, *,
               inner_folds: int = 4, seed: int = 0, copies=(), mixes=DEFAULT_LAYER_MIXES,
               corpora=None) -> tuple[LinearFit, dict]:
    """Choose mix and ridge strength by speaker-grouped inner CV, then refit on every clip.

    Args:
        features: ``(clips, layers, hidden)`` pooled states of the training speakers.
        labels: Class ids.
        speakers: Speaker of every clip (the inner folds keep speakers apart).
        num_labels: Number of classes.
        inner_folds: Folds of the inner CV (fewer when there are fewer speakers).
        seed: Seed of the inner fold assignment.
        copies: Extra training states of the same clips, each shaped like ``features`` (row ``i`` is clip
            ``i`` altered, e.g. played faster: see :meth:`~ser_hf.training.probe.ProbeMethod.training_copies`).
            They are trained on beside their clips, always in the same inner fold, and never scored: the inner
            CV's UA is that of the unaltered held-out clips, as a user's clips are.
        mixes: The layer mixes to choose from (names of :data:`LAYER_MIXES`).
        corpora: The corpus of every clip, or None. Clips of several corpora make every corpus count the same
            (see the module docstring): in the fit's weights and in the inner CV's score.

    Returns:
        The fitted :class:`LinearFit` and a record of the choice (mix, alpha, inner UA of every candidate).
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    speakers = np.asarray(speakers, dtype=object)
    copies = _check_copies(copies, features)
    corpora = corpora_to_balance(corpora, len(labels))
    folds = _inner_folds(labels, speakers, inner_folds, seed)
    candidates = inner_candidates(features, labels, num_labels, folds, copies, mixes, corpora)
    best_ua, best_mix, best_alpha, best_scores = max(candidates, key=lambda c: c[0])
    fit = fit_chosen(features, labels, num_labels, best_mix, best_alpha, copies=copies, corpora=corpora)
    fit.temperature = _temperature(best_scores, labels, num_labels, corpora)
    record = {"fit": "linear", "layer_mix": best_mix, "ridge_alpha": best_alpha, "inner_ua": round(best_ua, 4),
              "temperature": round(fit.temperature, 4), "inner_folds": len(folds), "copies": len(copies),
              **({"balanced_corpora": sorted(set(corpora.tolist()))} if corpora is not None else {}),
              "candidates": [{"layer_mix": n, "ridge_alpha": a, "inner_ua": round(u, 4)} for u, n, a, _ in candidates]}
    logger.info("linear probe: mix %s, alpha %g, inner UA %.4f", best_mix, best_alpha, best_ua)
    return fit, record


def inner_candidates(features: np.ndarray, labels: np.ndarray, num_labels: int, folds, copies=(),
                     mixes=DEFAULT_LAYER_MIXES, corpora=None, speakers=None, speaker_power: float = 0.0) -> list[tuple]:
    """Every (layer mix of ``mixes``, ridge strength) scored by the inner CV ``folds``: ``(pooled UA, mix name,
    alpha, out-of-fold scores)`` in mix then alpha order (the first of equal UAs is the one :func:`fit_linear` keeps).

    ``copies`` join the training rows of their clip's inner fold and are never scored. With ``corpora`` (several
    corpora, see :func:`fit_linear`) the UA is the mean of the corpora's pooled UAs. ``speakers`` (each clip's) and
    ``speaker_power`` weigh the fits as :func:`balanced_weights` says; the UA stays that of every held-out clip.

    The mixes' per-layer scales (:func:`layer_mixes`) are taken once from every clip given, the inner held-out ones
    too: an unlabelled statistic of the training speakers only (no test speaker of the outer fold is ever here), so
    the inner UAs that choose among the mixes are very slightly optimistic, not the reported ones. Standardisation
    and the ridge fit are per inner fold.
    """
    corpora = corpora_to_balance(corpora, len(labels))
    candidates = []
    for name, mix in layer_mixes(features, mixes).items():
        mixed = np.einsum("nlh,l->nh", features, mix)
        mixed_copies = [np.einsum("nlh,l->nh", copy, mix) for copy in copies]
        scores = np.zeros((len(RIDGE_ALPHAS), len(labels), num_labels))
        for train, held_out in folds:
            trained = np.concatenate([mixed[train], *(copy[train] for copy in mixed_copies)])
            mean, scale = _standardise(trained)
            path = ridge_path((trained - mean) / scale, np.tile(labels[train], 1 + len(copies)), num_labels,
                              corpora=None if corpora is None else np.tile(corpora[train], 1 + len(copies)),
                              speakers=None if speakers is None else np.tile(speakers[train], 1 + len(copies)),
                              speaker_power=speaker_power)
            z = (mixed[held_out] - mean) / scale
            for index, (weight, bias) in enumerate(path):
                scores[index, held_out] = z @ weight.T + bias
        for index, alpha in enumerate(RIDGE_ALPHAS):
            ua = corpus_balanced_ua(labels, scores[index].argmax(axis=1), num_labels, corpora)
            candidates.append((ua, name, alpha, scores[index]))
    return candidates


def fit_chosen(features: np.ndarray, labels: np.ndarray, num_labels: int, mix_name: str, alpha: float,
               copies=(), corpora=None, speakers=None, speaker_power: float = 0.0) -> LinearFit:
    """Refit a chosen mix and ridge strength on every clip and its ``copies`` (temperature 1; ``corpora``,
    ``speakers`` and ``speaker_power`` as in :func:`inner_candidates`).

    The mix is built from the clips' own states, so copies change the weights, never which layers are mixed.
    """
    copies = _check_copies(copies, features)
    corpora = corpora_to_balance(corpora, len(labels))
    mix = layer_mixes(features)[mix_name]
    mixed = np.einsum("nlh,l->nh", np.concatenate([features, *copies]), mix)
    mean, scale = _standardise(mixed)
    ((weight, bias),) = ridge_path((mixed - mean) / scale, np.tile(labels, 1 + len(copies)), num_labels,
                                   alphas=(alpha,),
                                   corpora=None if corpora is None else np.tile(corpora, 1 + len(copies)),
                                   speakers=None if speakers is None else np.tile(np.asarray(speakers, dtype=object),
                                                                                  1 + len(copies)),
                                   speaker_power=speaker_power)
    return LinearFit(mix, mean, scale, weight, bias)


def _check_copies(copies, features: np.ndarray) -> list[np.ndarray]:
    copies = [np.asarray(copy, dtype=np.float64) for copy in copies]
    for index, copy in enumerate(copies):
        if copy.shape != features.shape:
            raise SERError(f"linear probe: training copy {index} has states shaped {copy.shape}, but the clips' "
                           f"states are {features.shape}; every copy needs one row per clip, in the clips' order.")
    return copies


def load_into_head(fit: LinearFit, head) -> None:
    """Write ``fit`` into a :class:`~ser_hf.training.probe.ProbeHead` so it computes the same logits.

    The head keeps its own standardisation buffers at identity: everything is in :func:`head_tensors`.
    """
    load_tensors_into_head(head_tensors(fit, head.projector.out_features), head)


def load_tensors_into_head(tensors: dict[str, np.ndarray], head) -> None:
    """Copy standard head tensors (already folded) into a ProbeHead, its standardisation set to identity."""
    with torch.no_grad():
        head.mean.zero_()
        head.scale.fill_(1.0)
        for name, value in tensors.items():
            head.get_parameter(name).copy_(torch.as_tensor(value, dtype=torch.float32))


def head_tensors(fit: LinearFit, projector_size: int) -> dict[str, np.ndarray]:
    """The standard HF head's tensors (``layer_weights``, ``projector.*``, ``classifier.*``) computing ``fit``.

    Standardisation and temperature are folded into the projector, so these load into an
    ``AutoModelForAudioClassification`` built with ``use_weighted_layer_sum`` as they are.
    """
    num_labels, hidden = fit.weight.shape
    if projector_size < num_labels:
        raise SERError(f"The linear probe needs probe_projector_size >= the number of emotions ({num_labels}); "
                       f"got {projector_size}. Raise probe_projector_size.")
    weight = fit.temperature * fit.weight / fit.scale[None, :]
    projector = np.zeros((projector_size, hidden))
    projector[:num_labels] = weight
    projector_bias = np.zeros(projector_size)
    projector_bias[:num_labels] = fit.temperature * fit.bias - weight @ fit.mean
    return {
        "layer_weights": np.where(fit.mix > 0, np.log(np.maximum(fit.mix, 1e-300)), _ABSENT_LAYER_LOGIT),
        "projector.weight": projector,
        "projector.bias": projector_bias,
        "classifier.weight": np.eye(num_labels, projector_size),
        "classifier.bias": np.zeros(num_labels),
    }
