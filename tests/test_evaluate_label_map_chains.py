"""`ser-hf evaluate --label-map` on folder/manifest corpora: a raw-label entry whose target another entry maps again
(``glee=happy,happy=sad``) would relabel the glee clips twice; it is refused before anything is loaded."""

from __future__ import annotations

import pytest

from ser_hf.errors import EvaluationError, SERError
from ser_hf.evaluation.corpus_eval import evaluate_checkpoint


def _evaluate(tmp_path, corpus, label_map, **options):
    # Neither the checkpoint nor the corpus exists: a refusal of the map shows it came before any loading.
    return evaluate_checkpoint(tmp_path / "no-model", corpus, tmp_path / "no-data", label_map=label_map,
                               progress=False, **options)


@pytest.mark.parametrize("corpus", ["manifest", "folder"])
@pytest.mark.parametrize("label_map", ["glee=happy,happy=sad", "happy=sad,glee=happy", "glee=happy,Happy=sad",
                                       {"glee": "sad", "sad": "angry"}])
def test_a_raw_label_mapped_onto_a_label_the_map_sends_on_is_refused(tmp_path, corpus, label_map):
    with pytest.raises(EvaluationError, match=r"--label-map maps 'glee' to '(happy|sad)' \(applied to the corpus's "
                                              r"raw labels by the loader\) and '(happy|Happy|sad)' to '(sad|angry)'.*"
                                              r"relabelled twice.*Map the raw label straight to its final class "
                                              r"\(e\.g\. 'glee=(sad|angry)'\), or drop one"):
        _evaluate(tmp_path, corpus, label_map)


def test_the_loaders_own_map_is_checked_against_the_model_side_too(tmp_path):
    with pytest.raises(EvaluationError, match=r"maps 'glee' to 'happy'.*and 'happy' to 'sad'"):
        _evaluate(tmp_path, "manifest", "happy=sad", corpus_options={"label_map": {"glee": "happy"}})


@pytest.mark.parametrize("label_map", ["glee=sad,happy=angry", "glee=happy,calm=neutral"])
def test_entries_that_map_each_label_once_pass_on_to_loading(tmp_path, label_map):
    with pytest.raises(SERError) as caught:  # the missing checkpoint, reached only after the map was accepted
        _evaluate(tmp_path, "manifest", label_map)
    assert not isinstance(caught.value, EvaluationError) and "no-model" in str(caught.value)
