"""README tables rendered from benchmark result files (``benchmarks/tables.py``): figures come from the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def tables(benchmark_module):
    return benchmark_module("tables")


def _length(seconds, values, first):
    differences = [v - f for v, f in zip(values, first)]
    return {"seconds": seconds, "max_source_positions": int(seconds * 50), "pooled_ua_by_assignment": values,
            "pooled_ua_shared_folds": values[0], "mean": sum(values) / len(values), "std": 0.0,
            "difference_to_first": {"mean": sum(differences) / len(differences), "min": min(differences),
                                    "max": max(differences),
                                    "assignments_better": sum(d > 0 for d in differences),
                                    "assignments_worse": sum(d < 0 for d in differences)}}


def _filled(tmp_path, table):
    """``table`` filled into a README holding only its markers: the text it put between them."""
    readme = tmp_path / "README.md"
    readme.write_text(f"{table.begin}\n{table.end}\n")
    return table.fill(readme)


def _write_runs(tmp_path, name, runs):
    """A result file holding ``runs``, where the ``tables`` fixture's results folder is."""
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps({"results": {"runs": runs}}))


def test_input_length_table_renders_every_length_from_the_result_file(tables, tmp_path):
    first, other = [0.80, 0.78, 0.79], [0.83, 0.82, 0.78]
    run = {"corpus": "urdu", "model": "whisper-tiny.en", "labels": ["neutral", "happy", "sad", "angry"],
           "lengths": [_length(30.0, first, first), _length(10.0, other, first)],
           "inner_cv_choice": {"pooled_ua_shared_folds": 0.775,
                               "per_fold": [{"positions": "0"}, {"positions": "500"}]}}
    _write_runs(tmp_path, "input_length", [run])
    readme = tmp_path / "README.md"
    table = tables.README_TABLES["input-length"]
    readme.write_text(f"intro\n{table.begin}\nold table\n{table.end}\nrest\n")

    text = table.fill(readme)

    assert "| urdu (4) | whisper-tiny.en | 30 s | 79.0 (78.0-80.0) | (first) |" in text
    # 10 s: mean 81.0, two assignments better (+3.0, +4.0), one worse (-1.0).
    assert "| urdu (4) | whisper-tiny.en | 10 s | 81.0 (78.0-83.0) | +2.0 (-1.0 to +4.0), 2 / 1 |" in text
    assert "urdu (4) whisper-tiny.en 77.5 (chose 1500, 500 positions)" in text
    written = readme.read_text()
    assert "old table" not in written and written.startswith("intro\n") and written.endswith("rest\n")


def test_speed_copies_table_renders_both_variants_from_the_result_file(tables, tmp_path):
    none, copied = [0.75, 0.76, 0.74], [0.77, 0.75, 0.76]
    rows = {"none": _length(6.0, none, none), "0.9,1.1": _length(6.0, copied, none)}
    run = {"corpus": "ravdess", "model": "whisper-base", "max_source_positions": 300, "labels": list("abcdefgh"),
           "rows": rows, "inner_cv_choice": {"pooled_ua_shared_folds": 0.7612,
                                             "per_fold": [{"variant": "none"}, {"variant": "0.9,1.1"}]}}
    _write_runs(tmp_path, "speed_copies", [run])

    text = _filled(tmp_path, tables.README_TABLES["speed-copies"])

    assert "| ravdess (8) | whisper-base, 6 s input | none | 75.0 (74.0-76.0) | (first) |" in text
    # mean 76.0; +2.0, -1.0, +2.0 against no copies.
    assert ("| ravdess (8) | whisper-base, 6 s input | 0.9x speed, 1.1x speed | 76.0 (75.0-77.0) | "
            "+1.0 (-1.0 to +2.0), 2 / 1 |") in text
    assert "ravdess (8) whisper-base with 0.9x speed, 1.1x speed 76.1 (copies in 1 of 2 folds)" in text
    # A second factor set of the same corpus, backbone and input shares the first one's "none" row.
    more = {**run, "rows": {"none": rows["none"], "0.8,1.2": _length(6.0, [0.74, 0.76, 0.75], none)}}
    _write_runs(tmp_path, "speed_copies", [run, more])
    text = tables.speed_copies_table()
    assert text.count("| none |") == 1
    assert "| ravdess (8) | whisper-base, 6 s input | 0.8x speed, 1.2x speed | 75.0 (74.0-76.0) | +0.0" in text


def test_audio_variants_table_renders_every_variant_against_none(tables, tmp_path):
    none, pitch = [0.72, 0.73, 0.71], [0.70, 0.71, 0.72]
    run = {"config": "ravdess/4class:whisper-tiny.en:300", "labels": list("abcd"),
           "rows": {"none": _length(6.0, none, none), "pitch copies": _length(6.0, pitch, none)},
           "inner_cv_choice": {"pooled_ua_shared_folds": 0.7212, "per_fold": [
               {"variant": "none"}, {"variant": "pitch copies"}, {"variant": "none"}]}}
    _write_runs(tmp_path, "probe_audio_variants", [run])

    text = _filled(tmp_path, tables.README_TABLES["audio-variants"])

    assert "| ravdess (4) | whisper-tiny.en, 6 s input | none | 72.0 (71.0-73.0) | (first) |" in text
    # -2.0, -2.0, +1.0 against none.
    assert ("| ravdess (4) | whisper-tiny.en, 6 s input | pitch copies | 71.0 (70.0-72.0) | "
            "-1.0 (-2.0 to +1.0), 1 / 2 |") in text
    assert "ravdess (4) whisper-tiny.en 72.1 (chose none x2, pitch copies x1)" in text


def test_layer_mixes_table_renders_the_candidate_sets_against_the_default(tables, tmp_path):
    default, bottom = [0.80, 0.78, 0.79], [0.82, 0.79, 0.78]
    run = {"config": "urdu:whisper-tiny.en:500", "labels": list("abcd"),
           "rows": {"default mixes": _length(10.0, default, default),
                    "default mixes + balanced-bottom": _length(10.0, bottom, default)}}
    _write_runs(tmp_path, "layer_mixes", [run])

    text = _filled(tmp_path, tables.README_TABLES["layer-mixes"])

    assert "| layer mixes the inner CV chooses from |" in text
    assert "| urdu (4) | whisper-tiny.en, 10 s input | default mixes | 79.0 (78.0-80.0) | (first) |" in text
    # +2.0, +1.0, -1.0 against the default mixes.
    assert ("| urdu (4) | whisper-tiny.en, 10 s input | default mixes + balanced-bottom | 79.7 (78.0-82.0) | "
            "+0.7 (-1.0 to +2.0), 2 / 1 |") in text
    assert "inner CV instead" not in text  # a candidate set's choice is no variant's choice
    _write_runs(tmp_path, "layer_mixes", [{**run, "config": "urdu:whisper-tiny.en:0"}])
    filled = tables.README_TABLES["layer-mixes"].fill(tmp_path / "README.md")
    assert "| urdu (4) | whisper-tiny.en, 30 s padding | default mixes |" in filled


def test_corpus_balance_table_renders_pooled_and_in_corpus_ua_against_the_first_fit(tables, tmp_path):
    fits = ("emotions balanced over all clips", "every corpus counts the same")

    def rows(first, second):
        return {fits[0]: _length(6.0, first, first), fits[1]: _length(6.0, second, first)}

    run = {"config": "urdu+ravdess/4class:whisper-base:300", "model": "whisper-base", "corpora": ["ravdess", "urdu"],
           "labels": list("abcd"),
           "rows": {"pooled": rows([0.73, 0.74], [0.76, 0.75]), "ravdess": rows([0.80, 0.81], [0.79, 0.80]),
                    "urdu": rows([0.62, 0.63], [0.70, 0.69]), "mean of corpora": rows([0.71, 0.72], [0.745, 0.745])}}
    _write_runs(tmp_path, "corpus_balance", [run])

    text = _filled(tmp_path, tables.README_TABLES["corpus-balance"])

    assert ("| ravdess + urdu (4) | whisper-base, 6 s input | emotions balanced over all clips | 73.5 (73.0-74.0) | "
            "(first) | ravdess 80.5, urdu 62.5, mean of corpora 71.5 |") in text
    assert ("| ravdess + urdu (4) | whisper-base, 6 s input | every corpus counts the same | 75.5 (75.0-76.0) | "
            "+2.0 (+1.0 to +3.0), 2 / 0 | ravdess 79.5 (-1.0), urdu 69.5 (+7.0), mean of corpora 74.5 (+3.0) |") in text


def test_test_time_copies_table_names_what_is_scored_and_skips_corpora_for_one(tables, tmp_path):
    scored = ("the clip alone", "the clip and its training copies")
    rows = {scored[0]: _length(6.0, [0.77, 0.76], [0.77, 0.76]), scored[1]: _length(6.0, [0.78, 0.78], [0.77, 0.76])}
    run = {"config": "ravdess:whisper-base:300:0.9,1.1:20", "model": "whisper-base", "corpora": ["ravdess"],
           "labels": list("abcdefgh"), "rows": {"pooled": rows, "ravdess": rows, "mean of corpora": rows}}
    _write_runs(tmp_path, "test_time_copies", [run])

    text = _filled(tmp_path, tables.README_TABLES["test-time-copies"])

    assert "| corpora (classes) | backbone, input | scored | pooled UA" in text and "vs the first scored" in text
    assert ("| ravdess (8) | whisper-base, 6 s input, speed copies 0.9x and 1.1x, noise copies at 20 dB SNR | the clip "
            "and its training copies | 78.0 (78.0-78.0) | +1.5 (+1.0 to +2.0), 2 / 0 | (one corpus) |") in text


def test_the_headroom_table_puts_the_probe_beside_the_heads_chosen_with_test_labels(tables, tmp_path):
    run = {"config": "urdu:whisper-tiny.en:500", "labels": ["neutral", "happy", "sad", "angry"],
           "probe_pooled_ua": 0.835, "reference_pooled_ua": 0.8575, "inner_cv_offered_every_candidate_pooled_ua": 0.83,
           "best_of_the_probe_mixes_chosen_with_test_labels": {"head": "balanced", "ridge_alpha": 300.0,
                                                               "pooled_ua": 0.8375},
           "best_chosen_with_test_labels": {"head": "layers 0+1", "ridge_alpha": 100.0, "pooled_ua": 0.89}}
    _write_runs(tmp_path, "head_headroom", [run])

    text = _filled(tmp_path, tables.README_TABLES["head-headroom"])

    assert "<!-- from benchmarks/results/head_headroom.json -->" in text
    assert "| urdu (4) | whisper-tiny.en, 10 s input | 83.5 | 85.8 | 83.0 | 83.8 | 89.0 (layers 0+1, 100) |" in text


def test_the_probe_vs_reference_table_shows_the_paired_difference(tables, tmp_path):
    run = {"config": "urdu:whisper-tiny.en:500", "labels": ["neutral", "happy", "sad", "angry"],
           "probe_pooled_ua": 0.835, "reference_pooled_ua": 0.8575, "difference": -0.0225,
           "difference_interval_95": [-0.0625, 0.0488], "share_of_resamples_probe_at_least_reference": 0.241,
           "probe_interval_95": [0.678, 0.902], "reference_interval_95": [0.686, 0.904],
           "clips_only_probe_right": 12, "clips_only_reference_right": 21,
           "jitter": {"probe_pooled_ua": [0.835, 0.835, 0.8351], "reference_pooled_ua": [0.8575, 0.85, 0.8625]}}
    _write_runs(tmp_path, "probe_vs_reference", [run])

    text = _filled(tmp_path, tables.README_TABLES["probe-vs-reference"])

    assert "<!-- from benchmarks/results/probe_vs_reference.json -->" in text
    assert ("| urdu (4) | whisper-tiny.en, 10 s input | 83.5 [67.8-90.2] | 85.8 [68.6-90.4] | -2.2 [-6.2 to +4.9] | "
            "24% | 12 / 21 | 83.5 / 85.0-86.2 | not run |") in text
    run["assignments"] = {"probe_mean": 0.823, "reference_mean": 0.8405, "difference_mean": -0.0175,
                          "difference_range": [-0.03, 0.005], "probe_better": 1, "probe_worse": 4}
    _write_runs(tmp_path, "probe_vs_reference", [run])
    text = _filled(tmp_path, tables.README_TABLES["probe-vs-reference"])
    assert "| 83.5 / 85.0-86.2 | 82.3 / 84.0, -1.8 (-3.0 to +0.5), 1 / 4 |" in text


def test_the_accuracy_tables_add_test_time_copies_only_where_a_probe_row_has_them(tables, tmp_path):
    def scores(ua):
        return {"unweighted_accuracy": ua, "confidence_intervals": {"unweighted_accuracy": [ua - 0.04, ua + 0.04]},
                "labels": list("abcdefgh")}

    probe = {"method": "probe", "seconds": 10.0, "pooled": scores(0.77),
             "mean_std": {"unweighted_accuracy": {"mean": 0.77, "std": 0.06}}}
    results = tmp_path / "results"
    results.mkdir()
    (results / "probe_accuracy.json").write_text(json.dumps({"results": {"runs": []}}))
    (results / "accuracy.json").write_text(json.dumps({"date": "today", "results": {"rows": [
        {**probe, "config": "ravdess:whisper-base:300"},
        {**probe, "config": "ravdess:whisper-base:300:0.9,1.1:20", "test_time_copies": scores(0.785)}]}}))
    adaptive = {"enrollment": "10", "unweighted_accuracy": 0.82, "confidence_interval": [0.78, 0.86], "gain": 0.05,
                "gain_interval": [0.02, 0.081], "fallback_speakers": 0, "speakers": 24,
                "offset_estimator_by_fold": ["speaker mean"]}
    rows = json.loads((results / "accuracy.json").read_text())
    rows["results"]["rows"].append({"config": "ravdess:whisper-base:300:0.9,1.1:20",
                                    "method": "probe + speaker adaptation", "speaker_adaptive": [adaptive],
                                    "speaker_adaptive_test_time_copies": [{**adaptive, "unweighted_accuracy": 0.83}]})
    (results / "accuracy.json").write_text(json.dumps(rows))
    text = tables.accuracy_tables()
    assert ("| ravdess (8) | whisper-base, 6 s input, speed copies 0.9x and 1.1x, noise copies at 20 dB SNR, with "
            "test-time copies | speaker mean x1 | not run | 83.0 [78.0-86.0] (+5.0 [+2.0 to +8.1]) |") in text
    assert "The same probes with test-time copies" in text
    assert ("| ravdess (8) | whisper-base, 6 s input, speed copies 0.9x and 1.1x, noise copies at 20 dB SNR | "
            "77.0 [73.0-81.0] | 78.5 [74.5-82.5] | +1.5 |") in text
    assert text.count("| ravdess (8) | whisper-base, 6 s input | 77.0") == 1  # no copies: no test-time row
    assert "Partial fine-tuning" not in text  # none was run
    partial = [{"config": "ravdess:whisper-base:300", "method": f"partial fine-tuning, top 1 layer, seed {seed}",
                "pooled": scores(ua)} for seed, ua in ((2, 0.70), (0, 0.74), (1, 0.72))]
    rows["results"]["rows"] += partial
    (results / "accuracy.json").write_text(json.dumps(rows))
    assert ("| ravdess (8) | whisper-base, 6 s input | top 1 | seed 0: 74.0 [70.0-78.0]; seed 1: 72.0 [68.0-76.0]; "
            "seed 2: 70.0 [66.0-74.0] | 72.0 | 77.0 [73.0-81.0] |") in tables.accuracy_tables()  # seeds in order
    rows["results"]["rows"] = [row for row in rows["results"]["rows"] if not row["method"].endswith(("1", "2"))]
    (results / "accuracy.json").write_text(json.dumps(rows))
    assert ("| ravdess (8) | whisper-base, 6 s input | top 1 | seed 0: 74.0 [70.0-78.0] | one seed run | "
            "77.0 [73.0-81.0] |") in tables.accuracy_tables()  # a row of one seed says so, no mean


def test_perturbation_table_puts_the_recipe_without_its_copies_beside_it(benchmark_module, tmp_path):
    perturbation = benchmark_module("perturbation")

    def row(condition, ua, change):
        return {"condition": condition, "description": condition, "unweighted_accuracy": ua, "weighted_accuracy": ua,
                "macro_f1": ua, "confidence_interval": [ua - 0.05, ua + 0.05], "ua_change": change,
                "ua_change_interval": [change - 0.02, change + 0.02]}

    result = {"rows": [row("clean", 0.80, 0.0), row("noise:snr=20", 0.70, -0.10)], "labels": list("abcd"),
              "num_samples": 240, "test_speakers": ["01", "02"], "training_speakers": ["03"] * 20,
              "recipe": "recipes/ravdess/whisper-tiny.en-probe.yaml", "seconds": {"evaluate_uncached": 700,
                                                                                  "evaluate_cached": 2},
              "predictions": {"computed_first_pass": 480},
              "without_copies": {"rows": [row("clean", 0.78, 0.0), row("noise:snr=20", 0.50, -0.28)]}}
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / "perturbation.json").write_text(json.dumps(
        {"date": "today", "machine": {"load_average": [1.0], "cpu_count": 2}, "results": result}))
    text = perturbation.readme_table()
    assert "| without the recipe's training copies: UA (change vs clean) |" in text
    assert "| `clean` | clean | 80.0 [75.0-85.0] | 80.0 | 80.0 |  | 78.0 |" in text
    assert "| `noise:snr=20` | noise:snr=20 | 70.0 [65.0-75.0] | 70.0 | 70.0 | -10.0 [-12.0, -8.0] | 50.0 (-28.0) |" in text
    assert "whisper-tiny.en-probe.yaml fitted on the other" in text
    result["overrides"] = {"probe_speed_copies": "none"}  # --set probe_speed_copies=none
    (tmp_path / "results" / "perturbation.json").write_text(json.dumps(
        {"date": "today", "machine": {"load_average": [1.0], "cpu_count": 2}, "results": result}))
    assert "whisper-tiny.en-probe.yaml with probe_speed_copies: none fitted on the other" in perturbation.readme_table()
    del result["without_copies"]  # an older result file: no such column
    (tmp_path / "results" / "perturbation.json").write_text(json.dumps(
        {"date": "today", "machine": {"load_average": [1.0], "cpu_count": 2}, "results": result}))
    assert "without the recipe" not in perturbation.readme_table()


def test_filling_a_readme_without_the_markers_fails_and_names_them(tables, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="input-length:begin"):
        tables.README_TABLES["input-length"].fill(readme)


def test_the_speaker_adaptive_legend_says_how_many_enrollment_draws_a_cell_pools(tables):
    rows = [{"enrollment": "10", "enrollment_draws": 5}, {"enrollment": "all", "enrollment_draws": 1}]
    assert "pools 5 draws of them per test speaker" in tables._draws_sentence(rows)
    # Rows measured with one draw (or before draws were recorded) say nothing about draws.
    assert tables._draws_sentence([{"enrollment": "10"}, {"enrollment": "all", "enrollment_draws": 1}]) == ""
    assert "pools 1 or 5 draws" in tables._draws_sentence([{"enrollment": "3"}, *rows])


def test_the_released_models_table_says_which_heads_learned_from_speed_copies(tables):
    assert tables._copies({"speed_copies": [0.9, 1.1]}) == ", with 0.9x and 1.1x speed copies"
    # Models without copies, and rows written before the field existed, say nothing.
    assert tables._copies({"speed_copies": []}) == tables._copies({}) == ""


def test_the_released_notes_point_from_the_combined_models_to_the_one_corpus_ones(tables):
    runs = [{"name": "b-urdu", "corpora": ["urdu"]}, {"name": "a-both", "corpora": ["urdu", "ravdess"]},
            {"name": "a-rav", "corpora": ["ravdess"]}]
    assert tables._one_corpus_models(runs) == " (shipped: `a-rav` for RAVDESS, `b-urdu` for URDU), or train one"
    assert tables._one_corpus_models(runs[1:2]) == ", trained with ser_hf"


def test_the_readme_holds_every_table_as_rendered_from_the_committed_results(benchmark_module, monkeypatch):
    # A result file rerun without `tables.py --readme` leaves the README quoting stale figures: this catches it.
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("SER_HF_RESULTS_DIR", str(root / "benchmarks" / "results"))
    tables = benchmark_module("tables")
    readme = (root / "README.md").read_text()
    for table in tables.README_TABLES.values():
        assert table.begin in readme and table.end in readme, table.marker
        between = readme.split(table.begin, 1)[1].split(table.end, 1)[0]
        assert between == f"\n{table.render()}\n", f"README table {table.marker!r} is stale: run tables.py --readme"


def test_the_adaptive_gain_tally_counts_cells_beyond_noise_and_names_the_worse_ones(tables):
    def cell(enrollment, gain, interval):
        return {"enrollment": enrollment, "gain": gain, "gain_interval": interval}

    rows = {("urdu:whisper-tiny.en:300", "probe + speaker adaptation"): {
                "speaker_adaptive": [cell("10", 0.03, [0.01, 0.05]), cell("20", -0.022, [-0.041, -0.008]),
                                     cell("all", 0.0, [-0.01, 0.01]), {"enrollment": "1", "gain": 0.0}],
                "speaker_adaptive_test_time_copies": [cell("3", -0.01, [-0.02, -0.001])]},
            ("urdu:whisper-tiny.en:300", "probe"): {"pooled": {"labels": list("nhsa")}}}
    assert tables._gain_tally(rows) == (
        "Of these 4 speaker-adaptive cells (with their paired gain interval), 1 gain by more than noise (the interval "
        "wholly above zero) and 2 lose by more than noise (wholly below zero): urdu (4) whisper-tiny.en, 6 s input, "
        "enrollment 20: -2.2 [-4.1 to -0.8]; urdu (4) whisper-tiny.en, 6 s input, with test-time copies, enrollment 3: "
        "-1.0 [-2.0 to -0.1].")
    rows[("urdu:whisper-tiny.en:300", "probe + speaker adaptation")] = {"speaker_adaptive": [cell("10", 0.0, [0, 0])]}
    assert tables._gain_tally(rows).endswith("0 gain by more than noise (the interval wholly above zero) and 0 lose by "
                                             "more than noise (wholly below zero).")


def test_the_released_adaptive_notes_name_models_whose_shipped_adaptation_is_off(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "README", tmp_path / "README.md")
    for name, enabled in (("off-model", False), ("on-model", True)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "record.json").write_text(json.dumps({"speaker_adaptation": {"enabled": enabled}}))
    row = {"enrollment": "10", "unweighted_accuracy": 0.8, "confidence_interval": [0.7, 0.9], "gain": 0.01,
           "gain_interval": [-0.01, 0.03], "fallback_speakers": 0, "speakers": 4, "offset_estimator_by_fold": ["off"]}
    runs = [{"name": name, "folder": name, "speaker_adaptive": [row]} for name in ("off-model", "on-model", "gone")]
    text = tables._released_adaptive(runs)
    assert "switched the shipped adaptation of `off-model` off" in text and "`on-model` off" not in text
    assert "shipped adaptation of" not in tables._released_adaptive(runs[1:])
