"""``benchmarks/accuracy.py``'s one result file: rows other scripts measured are copied in afresh at every write."""

from __future__ import annotations

import json


def _reference_run(spec, ua, date):
    return {"spec": spec, "mean_std": {}, "pooled": {"unweighted_accuracy": ua}, "seconds": 1.0,
            "command": "python benchmarks/reference_probe.py", "date": date}


def test_every_probe_config_gets_the_current_reference_row(benchmark_module, tmp_path):
    accuracy = benchmark_module("accuracy")
    results = tmp_path / "results"
    results.mkdir()
    (results / "reference_probe.json").write_text(json.dumps({"results": {"runs": [
        _reference_run("urdu:whisper-tiny.en:0", 0.82, "today"),
        _reference_run("ravdess:whisper-base:300", 0.74, "today")]}}))
    rows = {("urdu:whisper-tiny.en:0", "probe"): {"config": "urdu:whisper-tiny.en:0", "method": "probe"},
            ("urdu:whisper-tiny.en:0", "reference"): {"config": "urdu:whisper-tiny.en:0", "method": "reference",
                                                      "pooled": {"unweighted_accuracy": 0.83}, "date": "yesterday"},
            # a config with training copies takes the reference of its states (corpus, backbone, input)
            ("ravdess:whisper-base:300:0.9,1.1:20", "probe"): {"config": "ravdess:whisper-base:300:0.9,1.1:20",
                                                               "method": "probe"},
            # no reference was run for this one
            ("urdu:whisper-base:300", "probe"): {"config": "urdu:whisper-base:300", "method": "probe"}}

    copied = accuracy.with_copied_rows(rows)

    stale = copied[("urdu:whisper-tiny.en:0", "reference")]
    assert stale["pooled"]["unweighted_accuracy"] == 0.82 and stale["date"] == "today"
    assert stale["source"] == "results/reference_probe.json"
    assert copied[("ravdess:whisper-base:300:0.9,1.1:20", "reference")]["pooled"]["unweighted_accuracy"] == 0.74
    assert ("urdu:whisper-base:300", "reference") not in copied
    assert ("ravdess:whisper-base:300", "reference") not in copied  # no probe row of its own
    assert {key for key in copied if key[1] == "probe"} == {key for key in rows if key[1] == "probe"}
