"""A corpus's own mean as an offset (domain adaptation without labels), measured across corpora; not built.

A probe trained on one corpus scores near chance on the other (trained on RAVDESS's 4 shared emotions, tested on
URDU: it calls most clips angry; the leave-one-corpus-out columns of the README's multi-corpus table). Speaker
adaptation removes each *speaker's* offset; a user with many unlabelled clips of a new corpus could also remove the
*corpus's*: for a linear head that only moves the class biases, so it would fold into a standard checkpoint as a
speaker's offset does. This script measures whether it helps, on the probe's cached states of a multi-corpus config
(``corpus_balance.py``'s), trained on all clips of one corpus and tested on every clip of the other:

- ``global head``: the default linear fit (``fit_linear``), the states as they are;
- ``global head, target corpus centred``: the fit on the source corpus centred on its own mean, the target corpus
  centred on the mean of all its clips (transductive), or of N random target clips (scored on the others;
  :data:`DRAWS` draws, their UAs averaged);
- ``adaptive head, one offset for the corpus`` / ``..., one offset per speaker``: the speaker-adaptive probe
  (``fit_adaptive_probe`` on the source corpus, its head used whatever its inner check decided), every target clip
  enrolled as one speaker, or each target speaker's clips as theirs (``ser-hf predict --speaker-column``).

Pooled UA over the target corpus's clips, with a 95% interval resampling its speakers.

    .venv/bin/python benchmarks/domain_offset.py --configs urdu+ravdess/4class:whisper-base:300
"""

from __future__ import annotations

import time

import numpy as np
from accuracy import multi_corpus_run
from common import run_configs, scratch_dir

from ser_hf.evaluation.report import EvaluationReport
from ser_hf.models.adaptive_head import SpeakerShift, estimate_offset
from ser_hf.training import linear_probe
from ser_hf.training.experiment import make_method
from ser_hf.training.run_data import load_run_dataset
from ser_hf.training.speaker_adaptation import fit_adaptive_probe

#: Random target clips the corpus mean is taken from, and how many draws of them.
TARGET_CLIPS = (10, 30, 100)
DRAWS = 5


def _scored(references, predictions, speakers, labels) -> dict:
    report = EvaluationReport.from_predictions(references, predictions, label_names=labels, groups=speakers)
    low, high = report.confidence_intervals["unweighted_accuracy"]
    return {"pooled_ua": float(report.unweighted_accuracy), "ci95": [float(low), float(high)]}


def _transfer(features, classes, speakers, source, target, labels, settings, seed: int) -> dict:
    num_labels = len(labels)

    def fit(x):
        return linear_probe.fit_linear(x, classes[source], speakers[source], num_labels, seed=settings.seed,
                                       inner_folds=settings.inner_folds, mixes=settings.layer_mixes)[0]

    def predict(model, x):
        return model.logits(x).argmax(axis=1)

    def score(predicted, rows=target):
        return _scored(classes[rows], predicted, speakers[rows], labels)

    rows = {"global head": score(predict(fit(features[source]), features[target]))}
    centred = fit(features[source] - features[source].mean(axis=0))
    rows["global head, target corpus centred on all its clips"] = score(
        predict(centred, features[target] - features[target].mean(axis=0)))
    rng = np.random.default_rng(seed)
    for clips in TARGET_CLIPS:
        draws = []
        for _ in range(DRAWS):
            enrolled = rng.choice(target, clips, replace=False)
            rest = np.setdiff1d(target, enrolled)
            draws.append(score(predict(centred, features[rest] - features[enrolled].mean(axis=0)), rest)["pooled_ua"])
        rows[f"global head, target corpus centred on {clips} random clips"] = {
            "pooled_ua": float(np.mean(draws)), "draws": draws}
    probe = fit_adaptive_probe(features[source], classes[source], speakers[source], num_labels,
                               projector_size=256, seed=settings.seed, inner_folds=settings.inner_folds,
                               mixes=settings.layer_mixes)

    def offset(x):
        return SpeakerShift(estimate_offset(x, probe.global_head, probe.adaptive_head, probe.means, probe.shrink,
                                            probe.estimator))

    x = features[target]
    rows["adaptive head, one offset for the corpus"] = score(probe.logits(x, offset(x)).argmax(axis=1))
    per_speaker = np.empty(len(target), dtype=np.int64)
    for speaker in np.unique(speakers[target]):
        mine = speakers[target] == speaker
        per_speaker[mine] = probe.logits(x[mine], offset(x[mine])).argmax(axis=1)
    rows["adaptive head, one offset per speaker (all its clips)"] = score(per_speaker)
    return {"rows": rows, "adaptive_estimator": probe.estimator, "adaptive_check_left_on": bool(probe.enabled)}


def run_config(spec: str) -> dict:
    start = time.perf_counter()
    run = multi_corpus_run(spec, scratch_dir("ser_hf_domain_offset_"))
    dataset = load_run_dataset(run.data)
    labels = dataset.features["label"].names
    method = make_method(run, labels, progress=False)
    features = np.asarray(method.features(dataset["audio"]), dtype=np.float64)
    classes = np.asarray(dataset["label"])
    speakers = np.asarray(dataset["speaker"], dtype=object)
    corpora = np.asarray(dataset["corpus"], dtype=object)
    transfers = {}
    for index, target_name in enumerate(sorted(set(corpora.tolist()))):
        source, target = np.flatnonzero(corpora != target_name), np.flatnonzero(corpora == target_name)
        (source_name,) = sorted(set(corpora[source].tolist()))
        transfers[f"{source_name} -> {target_name}"] = _transfer(
            features, classes, speakers, source, target, labels, method.settings, seed=index)
        print(spec, source_name, "->", target_name, {name: round(100 * row["pooled_ua"], 1)
              for name, row in transfers[f"{source_name} -> {target_name}"]["rows"].items()}, flush=True)
    return {"config": spec, "model": run.model.model_name_or_path, "labels": labels, "transfers": transfers,
            "target_clips": list(TARGET_CLIPS), "draws": DRAWS, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    run_configs(__doc__.splitlines()[0], "domain_offset", run_config)
