"""Evidence for the released models' records and cards, read from other committed benchmark result files.

``release_models.py`` trains and checks the heads; this module only turns what the cross-corpus, reference-probe,
throughput and streaming benchmarks measured into card facts and limitation lines, so the figures a card quotes
can be read (and tested) without the training code.
"""

from __future__ import annotations

import json
from typing import Any

from common import RESULTS_DIR

from ser_hf.evaluation.tables import signed_percent_range
from ser_hf.models.released import RELEASES, ReleaseSpec

CROSS_CORPUS = "cross_corpus_ravdess_to_urdu"
#: Single-corpus linear probes of the released recipes (``--references``): what each corpus scores alone, and
#: URDU with Whisper's 30 s padding.
REFERENCES = "release_references"
#: The earlier (gradient-head) probe results: RAVDESS 8 classes with 6 s input and with 30 s padding.
PROBE_ACCURACY = "probe_accuracy"
#: Every input length scored with the default probe's fit over several fold assignments (``input_length.py``).
INPUT_LENGTH = "input_length"
SHIPPED_POSITIONS = 300


def _cross_corpus_limitation() -> list[str]:
    path = RESULTS_DIR / f"{CROSS_CORPUS}.json"
    if not path.is_file():
        return []
    result = json.loads(path.read_text())["results"]
    inside = result["train"]["in_corpus_test"]["unweighted_accuracy"]
    outside = result["evaluate"]["unweighted_accuracy"]
    return [
        f"**Cross-corpus drop, measured in ser_hf** (`benchmarks/results/{CROSS_CORPUS}.json`): a {result['model']} "
        f"probe trained on {result['train']['corpus'].upper()}'s 4 emotions scores {100 * inside:.1f} UA on held-out "
        f"{result['train']['corpus'].upper()} actors but {100 * outside:.1f} on {result['evaluate']['corpus'].upper()} "
        f"(chance 25). Expect a similar drop on speech unlike the training corpora (other languages, microphones, "
        f"natural conversation)."
    ]


def _limitations(spec: ReleaseSpec, input_length: dict, comparison: dict, cv: dict, adaptive=None) -> list[str]:
    seconds = "30" if spec.max_source_positions is None else f"{spec.max_source_positions // 50}"
    question = "Why not longer" if spec.max_source_positions == SHIPPED_POSITIONS else "Why this length"
    why = f" {question}: {input_length['decision']}" if input_length.get("decision") else ""
    items = [
        f"**Input length.** The model hears at most the first {seconds} s of a clip (Whisper "
        f"`max_source_positions` {spec.max_source_positions or 1500}); for longer recordings use "
        f"`EmotionRecognizer.predict_long` (sliding windows).{why}",
    ]
    if "ravdess" in spec.corpora:
        items.append("**Acted speech.** RAVDESS is 24 North American actors reading two fixed sentences; its share of "
                     "the training data is acted, prototypical emotion.")
    items += _comparison_limitation(spec, comparison)
    items.append(_adaptation_limitation(cv, adaptive))
    if cv.get("test_time_copies"):
        items.append(_copies_limitation(spec, cv))
    return items + _cross_corpus_limitation()


def _adaptation_limitation(cv: dict, adaptive=None) -> str:
    """What enrolling a speaker is measured to do for this recipe (the CV's speaker-adaptive rows), and, where the
    shipped head's own inner check (``adaptive``, the fitted ``AdaptiveProbe``) switched it off, that it is off."""
    rows = {row["enrollment"]: row for row in cv.get("speaker_adaptive", [])}
    def gain(row: dict) -> str:  # the paired interval says whether the gain is beyond noise
        return (f"gain paired 95% CI {signed_percent_range(row['gain_interval'])}; "
                if row.get("gain_interval") else "")

    figures = "; ".join(
        f"{label}: {100 * rows[key]['unweighted_accuracy']:.1f} UA vs {100 * rows[key]['global_unweighted_accuracy_same_clips']:.1f} "
        f"without ({gain(rows[key])}{rows[key]['fallback_speakers']} of {rows[key]['speakers']} speakers fell back)"
        for key, label in (("10", "10 random clips enrolled"), ("all", "all clips, transductive"),
                           ("neutral", "up to 10 neutral clips")) if key in rows)
    draws = max((row.get("enrollment_draws", 1) for key, row in rows.items() if key != "all"), default=1)
    pooled = f", random clips pooled over {draws} draws per speaker" if draws > 1 else ""
    return ("**Speaker adaptation is measured, not guaranteed.** `EmotionRecognizer.enroll` / `ser-hf predict "
            "--speaker-pattern` remove a speaker's offset estimated from their unlabelled clips; in this recipe's "
            f"speaker-independent CV (same folds{pooled}): {figures}. Enrollment clips that are all one emotion can "
            "hurt." + _switched_off(adaptive))


def _switched_off(adaptive) -> str:
    """The sentence saying the shipped head's adaptation is off and why (empty where it is on)."""
    if adaptive is None or adaptive.enabled:
        return ""
    return (f" **This model ships with adaptation switched off:** {adaptive.record.get('reason')}, so enrolled speakers "
            f"are scored by the standard head, with that reason.")


def _copies_limitation(spec: ReleaseSpec, cv: dict) -> str:
    """What scoring each clip with its training copies too is measured to do for this recipe."""
    copies = cv["test_time_copies"]
    made = [f"{factor:g}x speed" for factor in spec.speed_copies] + [f"noise at {snr:g} dB SNR" for snr in spec.noise_copies]
    return (f"**Test-time copies are an option, not the default.** The head also learned from copies of every training "
            f"clip ({', '.join(made)}). `ser-hf predict --test-time-copies` (`EmotionRecognizer.from_pretrained(..., "
            f"test_time_copies=True)`) scores each clip and the same copies of it, averaging their log-probabilities, "
            f"at {1 + len(made)} times the compute; in this recipe's CV (same folds): "
            f"{100 * copies['unweighted_accuracy']:.1f} UA against {100 * cv['pooled']['unweighted_accuracy']:.1f} for "
            f"the clip alone (gain paired 95% CI {signed_percent_range(copies['gain_interval'])}). `pipeline()` "
            "scores the clip alone.")


def _config(corpus: str, emotions: str | None, backbone: str, positions: int | None) -> str:
    """A probe_accuracy.py config ('corpus[/emotions]:model:max_source_positions', 0 = 30 s padding)."""
    return f"{corpus}{'/' + emotions if emotions else ''}:{backbone}:{positions or 0}"


def reference_configs() -> list[str]:
    """The single-corpus probes the records compare with: every corpus of a multi-corpus model alone (same
    backbone, emotions and input length), and URDU with Whisper's 30 s padding for both backbones."""
    configs = []
    for spec in RELEASES.values():
        if len(spec.corpora) > 1:
            configs += [_config(c, spec.emotions, spec.backbone, spec.max_source_positions) for c in spec.corpora]
            configs.append(_config("urdu", spec.emotions, spec.backbone, None))
    return list(dict.fromkeys(configs))


def _runs(name: str) -> dict[str, dict]:
    """The rows of a probe result file by config ({} when it is missing)."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        return {}
    return {row["config"]: row for row in json.loads(path.read_text())["results"]["runs"] if row.get("config")}


def _ua(row: dict | None) -> float | None:
    return None if row is None else row["pooled"]["unweighted_accuracy"]


def _speed_ratios() -> list[float]:
    """How many times more clips per second 6 s input processes than 30 s padding (inference_throughput.json)."""
    path = RESULTS_DIR / "inference_throughput.json"
    if not path.is_file():
        return []
    checkpoints = json.loads(path.read_text())["results"]["checkpoints"]
    short, padded = checkpoints.get("short_6s", {}), checkpoints.get("pad_30s", {})
    return sorted(short[way]["clips_per_second"] / padded[way]["clips_per_second"]
                  for way in ("ser_hf predict_files", "pipeline loop") if way in short and way in padded)


def _streaming_rtf_30s() -> tuple[list[float], int | None]:
    """Real-time factors of streaming with 30 s padding (streaming_rtf.json; above 1: falls behind), and the
    machine's CPU count."""
    path = RESULTS_DIR / "streaming_rtf.json"
    if not path.is_file():
        return [], None
    results = json.loads(path.read_text())["results"]
    factors = [entry["real_time_factor"] for model in results["models"].values() for entry in model.values()
               if isinstance(entry, dict) and entry.get("max_source_positions") == 1500]
    # min/median/max over repeated streams since issue 20.4 (the median is the figure); one number before.
    return sorted(f["median"] if isinstance(f, dict) else f for f in factors), results.get("cpu_count")


def input_length_evidence(spec: ReleaseSpec) -> dict[str, Any]:
    """Why the model ships 6 s input rather than Whisper's 30 s padding, with the figures and their files.

    Returns:
        ``{"max_source_positions", "seconds", "decision", "evidence"}``; ``decision`` is one paragraph of
        Markdown (the record's limitations, the card and the README say it), ``None`` for another length.
    """
    seconds = 30 if spec.max_source_positions is None else spec.max_source_positions / 50
    result = {"max_source_positions": spec.max_source_positions, "seconds": seconds, "decision": None, "evidence": {}}
    if spec.max_source_positions != SHIPPED_POSITIONS:
        return {**result, **_measured_length(spec)}
    references, gradient = _runs(REFERENCES), _runs(PROBE_ACCURACY)
    urdu = {backbone: (_ua(references.get(_config("urdu", "4class", backbone, None))),
                       _ua(references.get(_config("urdu", "4class", backbone, SHIPPED_POSITIONS))))
            for backbone in ("whisper-tiny.en", "whisper-base")}
    urdu = {backbone: pair for backbone, pair in urdu.items() if None not in pair}
    ravdess = (_ua(gradient.get(_config("ravdess", None, "whisper-base", None))),
               _ua(gradient.get(_config("ravdess", None, "whisper-base", SHIPPED_POSITIONS))))
    speed, (rtf, cpus) = _speed_ratios(), _streaming_rtf_30s()
    evidence = {
        "urdu_linear_probe_ua_30s_vs_6s": {b: list(pair) for b, pair in urdu.items()},
        "ravdess8_whisper_base_gradient_probe_ua_30s_vs_6s": list(ravdess) if None not in ravdess else None,
        "clips_per_second_6s_over_30s": speed,
        "streaming_real_time_factor_30s": rtf,
        "sources": [f"benchmarks/results/{name}.json" for name in
                    (REFERENCES, PROBE_ACCURACY, "inference_throughput", "streaming_rtf")],
    }
    accuracy, clauses = [], []
    if urdu:
        pairs = ", ".join(f"{b} {100 * padded:.1f} vs {100 * short:.1f}" for b, (padded, short) in urdu.items())
        accuracy.append(f"higher on URDU (URDU-only linear probe, speaker-independent CV, UA with 30 s padding vs 6 s "
                        f"input: {pairs}; `{REFERENCES}.json`)")
    if None not in ravdess:
        accuracy.append(f"lower on RAVDESS (whisper-base, 8 classes, with the earlier gradient-trained head: "
                        f"{100 * ravdess[0]:.1f} vs {100 * ravdess[1]:.1f}; `{PROBE_ACCURACY}.json`)")
    if accuracy:
        clauses.append("scores " + " but ".join(accuracy))
    if speed:
        clauses.append(f"is {min(speed):.1f}-{max(speed):.1f}x slower per clip (`inference_throughput.json`)")
    if rtf:
        # The 1-thread settings stand for a machine where another job holds a core (streaming_rtf.py).
        behind = (", so `ser-hf serve` and streaming, which use these models by default, would fall behind real time "
                  "when another job holds a core" if max(rtf) > 1 else "")
        clauses.append(f"makes streaming need {min(rtf):.2f}-{max(rtf):.2f} s of compute per second of audio with 1 "
                       f"or 2 threads on {cpus or 'a few'} CPU cores (`streaming_rtf.json`){behind}")
    if clauses:
        joined = ", ".join(clauses[:-1]) + (", and " if len(clauses) > 1 else "") + clauses[-1]
        result["decision"] = f"Whisper's usual 30 s padding {joined}."
    result["evidence"] = evidence
    return result


#: Whisper's encoder positions with its usual 30 s padding (50 per second).
WHISPER_POSITIONS = 1500


def _length_name(positions: int) -> str:
    return "30 s padding" if positions == WHISPER_POSITIONS else f"{positions / 50:g} s"


def _measured_length(spec: ReleaseSpec) -> dict[str, Any]:
    """Why a one-corpus model has the input length it ships: the decision and evidence from ``input_length.py``'s
    row for its corpus and backbone (every length's mean pooled UA over the fold assignments); empty when the file
    has no such row with the shipped length."""
    path = RESULTS_DIR / f"{INPUT_LENGTH}.json"
    if len(spec.corpora) != 1 or not path.is_file():
        return {}
    positions = spec.max_source_positions or WHISPER_POSITIONS
    for run in json.loads(path.read_text())["results"]["runs"]:
        lengths = {row["max_source_positions"]: row for row in run["lengths"]}
        if run["corpus"] != spec.corpora[0] or run["model"] != spec.backbone or positions not in lengths:
            continue
        shipped = lengths[positions]
        others = ", ".join(f"{_length_name(length)} {100 * row['mean']:.1f}" for length, row in
                           sorted(lengths.items(), key=lambda item: -item[1]["mean"]) if length != positions)
        rank = ("the most of the lengths measured" if shipped["mean"] >= max(row["mean"] for row in lengths.values())
                else "below the best length measured")
        first = run["lengths"][0]["max_source_positions"]  # difference_to_first compares with this length
        better = shipped["difference_to_first"]["assignments_better"]
        against = (f"; better than {_length_name(first)} in {better} of {run['assignments']} assignments"
                   if first != positions else "")
        decision = (f"On {spec.corpora[0].upper()}, {spec.backbone}'s probe (the default linear fit) scores "
                    f"{100 * shipped['mean']:.1f} mean pooled UA at {_length_name(positions)} over "
                    f"{run['assignments']} speaker-grouped fold assignments, {rank} ({others}{against}; "
                    f"`{INPUT_LENGTH}.json`).")
        by_length = {_length_name(length): row["mean"] for length, row in lengths.items()}
        evidence = {"mean_pooled_ua_by_length": by_length, "assignments": run["assignments"],
                    "sources": [f"benchmarks/results/{INPUT_LENGTH}.json"]}
        nested = (run.get("inner_cv_choice") or {}).get("pooled_ua_shared_folds")
        if nested is not None and len(lengths) > 1 and rank.startswith("the most"):
            # The assignments above include the CV's own folds: a length picked by them flatters that CV's UA.
            decision += (f" The length was chosen by these scores, whose speakers include every one the CV UA of this "
                         f"card is measured on, so that UA is optimistic: choosing the length inside each fold from "
                         f"its training speakers alone scores {100 * nested:.1f} pooled UA on the same folds.")
            evidence["nested_pooled_ua"] = nested
        return {"decision": decision, "evidence": evidence}
    return {}


def single_corpus_comparison(spec: ReleaseSpec, cv: dict) -> dict[str, dict[str, float]]:
    """For a multi-corpus model: each corpus's UA in its CV beside a probe trained on that corpus alone."""
    if len(spec.corpora) < 2:
        return {}
    references = _runs(REFERENCES)
    rows = {}
    for corpus in spec.corpora:
        alone = _ua(references.get(_config(corpus, spec.emotions, spec.backbone, spec.max_source_positions)))
        if alone is not None:
            rows[corpus] = {"combined": cv["per_corpus"][corpus]["unweighted_accuracy"], "alone": alone}
    return rows


def _comparison_limitation(spec: ReleaseSpec, comparison: dict) -> list[str]:
    worse = {corpus: row for corpus, row in comparison.items() if row["alone"] - row["combined"] > 0.02}
    if not worse:
        return []
    parts = ", ".join(f"{corpus.upper()} {100 * row['combined']:.1f} vs {100 * row['alone']:.1f}"
                      for corpus, row in worse.items())
    return [f"**Training on {' + '.join(c.upper() for c in spec.corpora)} costs accuracy on "
            f"{' and '.join(c.upper() for c in worse)}** (speaker-independent CV UA of this model on that corpus's "
            f"clips vs a probe of the same recipe trained on that corpus alone: {parts}; "
            f"`benchmarks/results/{REFERENCES}.json`). For speech like one corpus, a model trained on it alone "
            f"(`ser-hf train --corpus ...`) does better."]
