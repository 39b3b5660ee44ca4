"""Hostile and mistaken recipes: alias bombs, duplicate keys, out-of-range or non-finite numbers, wrong types.

Every one must fail at parse time with a :class:`SERError` that names the key, the value, what is allowed and
where the value was set, never with a traceback, a hang or a run that saves an untrained model as a success.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from ser_hf.errors import ModelError, SERError
from ser_hf.models.factory import ModelOptions
from ser_hf.ranges import Range, ranges_of
from ser_hf.training.arguments import DataArguments, ModelArguments, ProbeArguments, SERTrainingArguments
from ser_hf.training.recipes import MAX_RECIPE_VALUES, parse_run, read_recipe

GROUPS = (DataArguments, ModelArguments, SERTrainingArguments, ProbeArguments)


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- YAML aliases --------------------------------------------------------------------------------------

def _laughs(levels: int, width: int = 9) -> str:
    """One valid key whose list nests aliases ``levels`` deep: ``width ** levels`` values once expanded."""
    lines = ["gain_db:", f"  - &a0 [{', '.join(['1'] * width)}]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels,width", [(9, 9), (40, 2), (4, 300)])
def test_nested_aliases_are_refused_before_they_expand(tmp_path, python_memory_peak, levels, width):
    recipe = _write(tmp_path, "laughs.yaml", _laughs(levels, width))
    assert recipe.stat().st_size < 8000
    with python_memory_peak() as peak, pytest.raises(
            SERError, match=rf"laughs\.yaml, line \d+: YAML aliases \(\*name\) expand to more than "
                            rf"{MAX_RECIPE_VALUES} values"):
        parse_run(recipe)
    assert peak["megabytes"] < 50


def test_aliases_of_long_strings_are_refused_before_they_expand(tmp_path, python_memory_peak):
    # Under the value count (9,000 aliases), but 9,000 x 12 KB of text: 4.4 GB of memory before the fix.
    long = "x" * 12_000
    text = f"run_name: &s {long}\nlabel_map: [" + ", ".join(["*s"] * 9_000) + "]\n"
    recipe = _write(tmp_path, "strings.yaml", text)
    assert recipe.stat().st_size < 200_000
    with python_memory_peak() as peak, pytest.raises(
            SERError, match=r"strings\.yaml, line \d+: YAML aliases \(\*name\) expand to more than "
                            r"\d+ characters of text"):
        parse_run(recipe)
    assert peak["megabytes"] < 50


def test_a_recursive_alias_is_refused(tmp_path):
    recipe = _write(tmp_path, "loop.yaml", "gain_db: &g [1, *g]\n")
    with pytest.raises(SERError, match=r"loop\.yaml, line 1: an alias refers to a value that contains it"):
        read_recipe(recipe)


def test_a_few_aliases_still_work(tmp_path):
    recipe = _write(tmp_path, "ok.yaml", "gain_db: &g [-6, 6]\nnoise_snr_db: *g\n")
    assert parse_run(recipe).training.noise_snr_db == [-6.0, 6.0]


# --- duplicate keys, structure -------------------------------------------------------------------------

@pytest.mark.parametrize("name,text,pattern", [
    ("dup.yaml", "corpus: urdu\nlearning_rate: 0.1\nlearning_rate: 0.2\n",
     r"dup\.yaml: key 'learning_rate' appears twice \(lines 2 and 3\)"),
    ("dup.yaml", "corpus: urdu\ncorpus: ravdess\n", r"key 'corpus' appears twice \(lines 1 and 2\)"),
    ("dup.json", '{"corpus": "urdu", "num_folds": 3, "num_folds": 4}', r"dup\.json: key\(s\) \['num_folds'\] appear more"),
])
def test_duplicate_keys_are_refused(tmp_path, name, text, pattern):
    with pytest.raises(SERError, match=pattern):
        parse_run(_write(tmp_path, name, text))


@pytest.mark.parametrize("text,pattern", [
    ("gain_db: {low: 1}\n", r"gain_db holds a dict with nested values"),
    ("gain_db: [[1, 2], 3]\n", r"gain_db holds a list with nested values"),
    ("1: 2\n", r"key 1 is not text \(int\)"),
    ("corpus: [urdu\n", r"is not valid YAML \(.*line"),
    ("[" * 50000 + "]" * 50000, r"nests values too deeply"),
    ("- corpus\n- urdu\n", r"must be a mapping of keys to values, found list"),
    ("corpus: !!python/object/apply:os.system ['true']\n", r"is not valid YAML \(could not determine a constructor"),
    ("corpus: \"\\xff\"\ndata_dir: [\n", r"is not valid YAML"),
])
def test_malformed_recipes_name_the_file(tmp_path, text, pattern):
    with pytest.raises(SERError, match=pattern):
        parse_run(_write(tmp_path, "bad.yaml", text))


def test_an_oversized_recipe_is_refused_unread(tmp_path):
    recipe = _write(tmp_path, "big.yaml", "# padding\n" * 200_000)
    with pytest.raises(SERError, match=r"big\.yaml is \d+ bytes; recipes are small"):
        read_recipe(recipe)


# --- numeric ranges ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,key,shown", [
    ("probe_max_epochs: -5\n", "probe_max_epochs", r"a positive integer \(>= 1\), got -5"),
    ("probe_patience: 0\n", "probe_patience", r"a positive integer \(>= 1\), got 0"),
    ("learning_rate: .nan\n", "learning_rate", r"a positive number \(> 0\), got nan"),
    ("learning_rate: -.inf\n", "learning_rate", r"a positive number \(> 0\), got -inf"),
    ("probe_learning_rate: 0\n", "probe_learning_rate", r"a positive number \(> 0\), got 0\.0"),
    ("weight_decay: -1.0e-5\n", "weight_decay", r"a non-negative number \(>= 0\), got -1e-05"),
    ("augment_probability: 1.5\n", "augment_probability", r"a probability in \[0, 1\], got 1\.5"),
    ("test_size: 1.0\n", "test_size", r"a share in \[0, 1\), got 1\.0"),
    ("num_folds: 1\n", "num_folds", r"an integer \(>= 2\), got 1"),
    ("seed: -1\n", "seed", r"a seed \(an integer\) in \[0, 4294967295\], got -1"),
    ("hidden_dropout: 2\n", "hidden_dropout", r"a probability in \[0, 1\], got 2\.0"),
    ("classifier_proj_size: 100000000\n", "classifier_proj_size", r"a positive integer in \[1, 65536\], got 100000000"),
    ("per_device_train_batch_size: 0\n", "per_device_train_batch_size", r"a positive integer \(>= 1\), got 0"),
    ("max_duration: -3\n", "max_duration", r"a duration in seconds in \[0.1, 300\], got -3\.0"),
    ("probe_speed_copies: [0.9, 3]\n", "probe_speed_copies", r"a speed factor in \[0\.5, 2\], got \[0\.9, 3\.0\]"),
    ("probe_noise_copies: [20, -5]\n", "probe_noise_copies",
     r"a signal-to-noise ratio in dB in \[0, 60\], got \[20\.0, -5\.0\]"),
])
def test_out_of_range_recipe_values_name_key_value_range_and_file(tmp_path, text, key, shown):
    recipe = _write(tmp_path, "r.yaml", text)
    with pytest.raises(SERError, match=rf"\.{key} must be {shown}\. Set in recipe .*r\.yaml: change it there"):
        parse_run(recipe)


def test_speed_copies_must_be_distinct_and_not_the_clip_itself(tmp_path):
    for factors in ("[1.0, 1.1]", "[0.9, 0.9]"):
        with pytest.raises(SERError, match=r"probe_speed_copies must list distinct speed factors other than 1 .*got "
                                           r"\[.*\]\. Set in recipe .*r\.yaml"):
            parse_run(_write(tmp_path, "r.yaml", f"probe_speed_copies: {factors}\n"))
    with pytest.raises(SERError, match=r"probe_noise_copies must list distinct SNRs in dB, e\.g\. 20; got \[20\.0, 20\.0\]\. "
                                       r"Set in recipe .*r\.yaml"):
        parse_run(_write(tmp_path, "r.yaml", "probe_noise_copies: [20, 20]\n"))


def test_more_copies_than_the_bound_are_refused_naming_both_lists(tmp_path):
    from ser_hf.ranges import MAX_COPIES

    speeds = [round(0.6 + 0.1 * i, 1) for i in range(MAX_COPIES - 1) if round(0.6 + 0.1 * i, 1) != 1.0]
    noise = [10, 20, 30]
    assert len(speeds) + len(noise) > MAX_COPIES
    with pytest.raises(SERError, match=rf"probe_speed_copies and probe_noise_copies ask for {len(speeds) + 3} copies "
                                       rf"of every clip; at most {MAX_COPIES} are allowed .*Set in recipe .*r\.yaml"):
        parse_run(_write(tmp_path, "r.yaml", f"probe_speed_copies: {speeds}\nprobe_noise_copies: {noise}\n"))
    parse_run(_write(tmp_path, "r.yaml", f"probe_speed_copies: {speeds[:MAX_COPIES - 3]}\n"
                                         f"probe_noise_copies: {noise}\n"))  # exactly the bound is fine


def test_a_recipes_copies_can_be_turned_off_with_none(tmp_path):
    recipe = _write(tmp_path, "r.yaml", "mode: probe\nprobe_speed_copies: [0.9, 1.1]\nprobe_noise_copies: [20]\n")

    def copies(*overrides, **values):
        run = parse_run(recipe, list(overrides), **values)
        return run.probe.probe_speed_copies, run.probe.probe_noise_copies

    assert copies() == ([0.9, 1.1], [20.0])
    assert copies("--probe_speed_copies", "none") == (None, [20.0])
    assert copies("--probe_speed_copies=None", "--probe_noise_copies", "NONE") == (None, None)
    assert copies(probe_noise_copies=[]) == ([0.9, 1.1], None)  # an empty list in Python or YAML: off
    assert copies(probe_speed_copies="none") == (None, [20.0])
    assert copies("--probe_speed_copies", "none", "--probe_speed_copies", "0.8") == ([0.8], [20.0])  # the last wins
    assert copies("--probe_speed_copies", "0.8", "--probe_speed_copies", "none") == (None, [20.0])
    assert parse_run(_write(tmp_path, "e.yaml", "probe_noise_copies: []\n")).probe.probe_noise_copies is None
    assert parse_run(recipe, ["--probe_speed_copies", "none"]).probe.settings().speed_copies == ()
    with pytest.raises(SERError, match=r"probe_speed_copies: 'none' turns it off and stands alone; got \['none', "
                                       r"'0\.9'\]"):
        copies("--probe_speed_copies", "none", "0.9")
    with pytest.raises(SERError, match=r"probe_layer_mixes: expected at least one argument"):  # it cannot be off
        parse_run(recipe, probe_layer_mixes=[])


def test_speed_copies_outside_the_probe_are_named_as_ignored(tmp_path, caplog):
    recipe = _write(tmp_path, "r.yaml", "mode: probe\nprobe_speed_copies: [0.9, 1.1]\nprobe_noise_copies: [20]\n")
    with caplog.at_level("WARNING", logger="ser_hf.training.recipes"):
        parse_run(recipe)
        assert caplog.text == ""
        parse_run(recipe, ["--mode", "finetune"])
    assert "probe_speed_copies (set in recipe" in caplog.text and "mode: finetune without head_init: probe ignores it" in caplog.text
    assert "set speed_perturb" in caplog.text
    assert "probe_noise_copies (set in recipe" in caplog.text and "set noise_snr_db" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ser_hf.training.recipes"):
        parse_run(recipe, ["--mode", "finetune", "--head_init", "probe"])  # its starting head uses them
    assert caplog.text == ""


def test_layer_mixes_must_be_known_distinct_names(tmp_path):
    run = parse_run(_write(tmp_path, "r.yaml", "probe_layer_mixes: [balanced, balanced-bottom]\n"))
    assert run.probe.settings().layer_mixes == ("balanced", "balanced-bottom")
    assert parse_run(_write(tmp_path, "r.yaml", "corpus: urdu\n")).probe.settings().layer_mixes == (
        "uniform", "balanced", "balanced-top")
    with pytest.raises(SERError, match=r"probe_layer_mixes must name one or more of \['uniform', 'balanced', "
                                       r"'balanced-top', 'balanced-bottom'\]; got \['balanced', 'bottom'\] "
                                       r"\(\['bottom'\] unknown\)\. Set in recipe .*r\.yaml"):
        parse_run(_write(tmp_path, "r.yaml", "probe_layer_mixes: [balanced, bottom]\n"))
    with pytest.raises(SERError, match=r"probe_layer_mixes must list distinct layer mixes.*Set in the command line"):
        parse_run(None, ["--probe_layer_mixes", "uniform", "uniform"])
    with pytest.raises(SERError, match=r"probe_layer_mixes: expected at least one argument"):
        parse_run(_write(tmp_path, "r.yaml", "probe_layer_mixes: []\n"))


def test_non_finite_list_items_are_refused(tmp_path):
    with pytest.raises(SERError, match=r"gain_db must hold finite numbers, got \[-6, -inf\]\. Set in recipe .*r\.yaml"):
        parse_run(_write(tmp_path, "r.yaml", "gain_db: [-6, -.inf]\n"))


def test_negative_numbers_in_exponent_notation_parse(tmp_path):
    run = parse_run(_write(tmp_path, "r.yaml", "gain_db: [-1.0e-5, 6]\nnoise_snr_db: [-1.0e+1, 30]\n"))
    assert run.training.gain_db == [-1e-5, 6.0] and run.training.noise_snr_db == [-10.0, 30.0]


def test_command_line_and_keyword_values_are_checked_and_named(tmp_path):
    recipe = _write(tmp_path, "r.yaml", "probe_max_epochs: 10\n")
    with pytest.raises(SERError, match=r"probe_max_epochs must be .*got -1\. Set in the command line \(--probe_max_epochs\)"):
        parse_run(recipe, ["--probe_max_epochs", "-1"])
    with pytest.raises(SERError, match=r"learning_rate must be .*got nan\. Set in the command line \(--learning_rate\)"):
        parse_run(None, ["--learning-rate=nan"])
    with pytest.raises(SERError, match=r"probe_dropout must be a probability .*got -0\.5\. Set in the keyword argument"):
        parse_run(recipe, probe_dropout=-0.5)
    with pytest.raises(ModelError, match=r"ModelArguments\.mask_time_prob must be a probability .* Set in the command"):
        parse_run(None, ["--mask_time_prob", "inf"])


@pytest.mark.parametrize("text,pattern", [
    ("probe_max_epochs: many\n", r"probe_max_epochs: invalid int value: 'many' \(set in recipe .*r\.yaml\); expected int"),
    ("probe_batch_size: true\n", r"probe_batch_size: invalid int value: 'true'"),
    ("mode: train\n", r"mode: invalid choice: 'train'.*expected one of \['probe', 'finetune', 'partial'\]"),
])
def test_wrong_types_raise_instead_of_exiting(tmp_path, text, pattern):
    with pytest.raises(SERError, match=pattern):
        parse_run(_write(tmp_path, "r.yaml", text))


def test_a_list_written_as_one_value_is_answered_with_both_list_forms(tmp_path):
    """argparse reads each list item alone, so '[0.9, 1.1]' on the command line (or '0.9, 1.1' in YAML) is one bad
    float: the error shows how to write the list in both places."""
    both_forms = (r"expected list\[float\]: on the command line its values separated by spaces "
                  r"\(--probe_speed_copies 0\.9 1\.1\), in a recipe a YAML list \(probe_speed_copies: \[0\.9, 1\.1\]\)")
    with pytest.raises(SERError, match=r"invalid float value: '\[0\.9, 1\.1\]' \(set in the command line.*" + both_forms):
        parse_run(None, ["--probe_speed_copies", "[0.9, 1.1]"])
    with pytest.raises(SERError, match=r"invalid float value: '0\.9, 1\.1' \(set in recipe .*r\.yaml\).*" + both_forms):
        parse_run(_write(tmp_path, "r.yaml", "probe_speed_copies: 0.9, 1.1\n"))
    assert parse_run(None, ["--probe_speed_copies", "0.9", "1.1"]).probe.probe_speed_copies == [0.9, 1.1]


def test_transformers_own_checks_become_errors_naming_the_recipe(tmp_path):
    recipe = _write(tmp_path, "r.yaml", "eval_strategy: steps\nsave_strategy: epoch\nload_best_model_at_end: true\n")
    with pytest.raises(SERError, match=r"Invalid training arguments \(.*load_best_model_at_end.*\)\. Fix them in recipe"):
        parse_run(recipe)


def _numeric(cls, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint) or (hint,)
    flat = [typing.get_args(a)[0] if typing.get_origin(a) is list else a for a in args]
    return any(a in (int, float) for a in flat)


@pytest.mark.parametrize("cls", GROUPS, ids=lambda c: c.__name__)
def test_every_numeric_field_declares_its_range(cls):
    inherited = {f.name for f in dataclasses.fields(SERTrainingArguments.__mro__[1])} if cls is SERTrainingArguments else set()
    own = [f.name for f in dataclasses.fields(cls) if f.name not in inherited and _numeric(cls, f.name)]
    assert own, "no numeric fields found: the type inspection broke"
    assert sorted(set(own) - set(ranges_of(cls))) == []


def _outside(allowed: Range):
    if allowed.low is not None:
        return allowed.low if allowed.low_open else allowed.low - 1
    if allowed.high is not None:
        return allowed.high if allowed.high_open else allowed.high + 1
    return math.nan


@pytest.mark.parametrize("cls,name,allowed", [(cls, name, allowed) for cls in (*GROUPS, ModelOptions)
                                              for name, allowed in ranges_of(cls).items()
                                              if name in {f.name for f in dataclasses.fields(cls)}],
                         ids=lambda v: getattr(v, "__name__", v if isinstance(v, str) else ""))
def test_each_declared_range_is_enforced_on_direct_construction(cls, name, allowed):
    value = _outside(allowed)
    is_list = "list" in str(typing.get_type_hints(cls)[name])
    with pytest.raises(SERError, match=rf"{cls.__name__}\.{name} must be .*, got "):
        cls(**{name: [value] if is_list else value})


def test_defaults_are_in_range():
    for cls in (*GROUPS, ModelOptions):
        cls()


def test_an_empty_recipe_path_is_refused_not_taken_for_the_defaults():
    with pytest.raises(SERError, match=r"The recipe path is an empty string\. Pass a YAML file"):
        parse_run("")
    assert parse_run(None).model.mode  # no recipe at all still means the defaults


def test_several_values_for_a_setting_that_takes_one_are_named_as_such(tmp_path):
    """``train_top_layers: [1, 2]`` failed as "Unknown key(s) ['2'] in the command line", and ``--train_top_layers 1
    2`` too; a one-item list stays its item (``report_to: [tensorboard]``), a list setting takes its list."""
    base = "corpus: urdu\nmodel_name_or_path: x\noutput_dir: out\n"
    recipe = _write(tmp_path, "k.yaml", base + "train_top_layers: [1, 2]\n")
    with pytest.raises(SERError, match=r"train_top_layers takes one value \(int\), but recipe .*k\.yaml sets it to the "
                                       r"list \[1, 2\]; write one value, e\.g\. train_top_layers: 1\."):
        parse_run(recipe)
    with pytest.raises(SERError, match=r"partial_mixup_alpha takes one value \(float\)"):
        parse_run(_write(tmp_path, "m.yaml", base + "partial_mixup_alpha: [0.4, 0.5]\n"))
    with pytest.raises(SERError, match=r"value\(s\) \['2'\] that no setting takes"):
        parse_run(_write(tmp_path, "ok.yaml", base), ["--train_top_layers", "1", "2"])
    run = parse_run(_write(tmp_path, "one.yaml", base + "train_top_layers: [2]\nprobe_speed_copies: [0.9, 1.1]\n"))
    assert run.model.train_top_layers == 2 and run.probe.probe_speed_copies == [0.9, 1.1]
