"""``ser-hf models convert`` with hostile inputs: an output folder changed while the conversion runs, a vocabulary of
another model, damaged side files of SRC_DIR, and the wording of what is refused (audit s28, findings 3, 7, 8, 11)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

import ser_hf.models.whisper_convert as whisper_convert
from ser_hf._atomic_folder import atomic_directory
from ser_hf._io import refuse_dangling_link
from ser_hf.cli import main
from ser_hf.errors import ModelError
from ser_hf.models.whisper_convert import CONVERSION_FILE, convert_whisper

OUTPUTS = ["config.json", CONVERSION_FILE, "model.safetensors", "preprocessor_config.json"]


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory) -> Path:
    pytest.importorskip("ctranslate2", reason="ctranslate2 (test dependency) writes the synthetic CTranslate2 models")
    from test_ct2_reader import write_tiny_ct2_whisper

    return write_tiny_ct2_whisper(tmp_path_factory.mktemp("ct2") / "tiny")[0]


def _copy(tiny_ct2: Path, tmp_path: Path, name: str = "src") -> Path:
    return Path(shutil.copytree(tiny_ct2, tmp_path / name))


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _save_during_conversion(monkeypatch, path: Path) -> None:
    """The user saves ``path`` after the output check, while the weights are converted (a minute for large-v3)."""
    convert = whisper_convert.whisper_state_dict

    def slow(model, encoder_only=False):
        path.write_text("saved by the user while the conversion ran")
        return convert(model, encoder_only=encoder_only)

    monkeypatch.setattr(whisper_convert, "whisper_state_dict", slow)


# --- A: nothing ser_hf did not write is deleted; an empty folder is filled in place --------------------------


def test_a_file_saved_into_an_empty_out_dir_while_converting_is_kept(tiny_ct2, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o2770)
    _save_during_conversion(monkeypatch, out / "my_notes.txt")
    with pytest.raises(ModelError, match=r"out changed while its replacement was written: it now holds .*my_notes\.txt"
                                         r".*Nothing was replaced and the new output was not written"):
        convert_whisper(tiny_ct2, out)
    assert _tree(out) == {"my_notes.txt": b"saved by the user while the conversion ran"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o2770
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left beside it


def test_a_fill_stopped_midway_leaves_a_folder_its_rerun_replaces(tiny_ct2, tmp_path, monkeypatch):
    """A conversion killed while its files move into an existing empty folder left config.json alone there, which its
    own rerun (even with --force) refused as a folder of the user's files; now the record goes in first, marked
    incomplete, so the rerun asks for --force and --force replaces it."""
    import ser_hf._atomic_folder as io_module

    out = tmp_path / "out"
    out.mkdir()
    move, moved = io_module._move_no_replace, []

    def stop_after_two(source, target):
        if len(moved) == 2:
            raise KeyboardInterrupt
        moved.append(target)
        return move(source, target)

    monkeypatch.setattr(io_module, "_move_no_replace", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        convert_whisper(tiny_ct2, out, encoder_only=True)
    monkeypatch.setattr(io_module, "_move_no_replace", move)
    assert json.loads((out / CONVERSION_FILE).read_text())["incomplete"] is True
    assert len(list(out.iterdir())) == 2  # the marked record and one file
    with pytest.raises(ModelError, match=r"already holds an earlier conversion; pass overwrite"):
        convert_whisper(tiny_ct2, out, encoder_only=True)
    for leftover in tmp_path.glob(".out.tmp-*"):  # what the stopped fill had not moved yet
        shutil.rmtree(leftover)
    convert_whisper(tiny_ct2, out, encoder_only=True, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert "incomplete" not in json.loads((out / CONVERSION_FILE).read_text())


def test_an_existing_empty_out_dir_is_filled_in_place(tiny_ct2, tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o2770)  # a group's folder: setgid, group-writable
    inode = out.stat().st_ino
    convert_whisper(tiny_ct2, out, encoder_only=True)
    assert out.stat().st_ino == inode and stat.S_IMODE(out.stat().st_mode) == 0o2770
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert all(p.stat().st_gid == out.stat().st_gid for p in out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def test_force_keeps_a_file_added_to_an_earlier_conversion_while_converting(tiny_ct2, tmp_path, monkeypatch):
    out = convert_whisper(tiny_ct2, tmp_path / "out", encoder_only=True)
    before = _tree(out)
    _save_during_conversion(monkeypatch, out / "notes.txt")
    with pytest.raises(ModelError, match=r"it now holds .*out/notes\.txt, which was not there when the work began"):
        convert_whisper(tiny_ct2, out, overwrite=True)
    assert _tree(out) == {**before, "notes.txt": b"saved by the user while the conversion ran"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_never_deletes_what_appeared_in_the_folder_it_replaces(tmp_path):
    """Every caller (speaker models, released models) gets the same guard: what the folder held at the start."""
    out = tmp_path / "checkpoint"
    out.mkdir()
    (out / "config.json").write_text("earlier")
    with pytest.raises(ModelError, match=r"checkpoint changed .*holds .*checkpoint/mine\.txt"):
        with atomic_directory(out, overwrite=True) as folder:
            (folder / "config.json").write_text("new")
            (out / "mine.txt").write_text("mine")
    assert _tree(out) == {"config.json": b"earlier", "mine.txt": b"mine"}
    (out / "mine.txt").unlink()
    with atomic_directory(out, overwrite=True) as folder:
        (folder / "config.json").write_text("new")
    assert _tree(out) == {"config.json": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


# --- B: the vocabulary must be this model's -----------------------------------------------------------------


def _vocabulary(src: Path) -> list[str]:
    return json.loads((src / "vocabulary.json").read_text())


@pytest.mark.parametrize(("change", "message"), [
    (lambda tokens: tokens[::-1], r"vocabulary\.json has <\|endoftext\|> at id 3 and <\|startoftranscript\|> at id 2"),
    (lambda tokens: ["a", "b"], r"vocabulary\.json has 2 tokens, but the model has 80 \(rows of its "
                                r"decoder/embeddings\).*Use the vocabulary shipped with this model\.bin"),
    (lambda tokens: [*tokens, "<|extra|>"], r"vocabulary\.json has 81 tokens, but the model has 80"),
    (lambda tokens: [f"t{i}" for i in range(80)], r"vocabulary\.json has no <\|endoftext\|> or no "
                                                  r"<\|startoftranscript\|>.*shipped with this model\.bin"),
])
def test_a_vocabulary_of_another_model_is_refused(tiny_ct2, tmp_path, change, message):
    src = _copy(tiny_ct2, tmp_path)
    (src / "vocabulary.json").write_text(json.dumps(change(_vocabulary(src))))
    with pytest.raises(ModelError, match=message):
        convert_whisper(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_without_a_vocabulary_special_ids_must_fit_the_model(tiny_ct2, tmp_path):
    src = _copy(tiny_ct2, tmp_path)
    (src / "vocabulary.json").unlink()
    with pytest.raises(ModelError, match=r"vocabulary of .*src/ is missing and the model has 80 token embeddings, too "
                                         r"few for Whisper's usual special-token ids \(50257, 50258\)"):
        convert_whisper(src, tmp_path / "out")


ENDINGS = r"has Windows \(\\r\\n\) or old Mac \(\\r\) line endings; reading it without them"


def _mixed(text: str) -> str:
    return "".join(line + ("\r\n" if number % 2 else "\n") for number, line in enumerate(text.splitlines()))


@pytest.mark.parametrize("damage, warnings", [
    pytest.param(lambda text: text.replace("\n", "\r\n"), [ENDINGS], id="crlf"),
    pytest.param(lambda text: text.replace("\n", "\r\n")[:-2], [ENDINGS], id="crlf-no-final-newline"),
    pytest.param(_mixed, [ENDINGS], id="mixed-crlf-lf"),
    pytest.param(lambda text: text.replace("\n", "\r"), [ENDINGS], id="cr-old-mac"),
    pytest.param(lambda text: text.replace("\n", "\r")[:-1], [ENDINGS], id="cr-no-final-newline"),
    pytest.param(lambda text: text[:-1], [], id="no-final-newline"),
    pytest.param(lambda text: text + "\n\n", [r"ends with 2 blank line\(s\)"], id="trailing-blank-lines"),
    pytest.param(lambda text: text.replace("\n", "\r\n") + "\r\n", [ENDINGS, r"ends with 1 blank line"],
                 id="crlf-trailing-blank-line"),
])
def test_a_vocabulary_txt_with_damaged_line_endings_is_still_this_models(tiny_ct2, tmp_path, caplog, damage, warnings):
    """An editor's or a git checkout's line endings (Windows \\r\\n on all lines or some, old Mac \\r, with or without
    a final one) made this model's vocabulary look like another model's ("has no <|endoftext|>", "has 81 tokens"):
    they are taken off, with one warning naming the file."""
    src = _copy(tiny_ct2, tmp_path)
    tokens = _vocabulary(src)
    (src / "vocabulary.json").unlink()
    (src / "vocabulary.txt").write_bytes(damage("".join(f"{token}\n" for token in tokens)).encode("utf-8"))
    with caplog.at_level("WARNING", logger="ser_hf.models.ct2_source"):
        config = json.loads((convert_whisper(src, tmp_path / "out", encoder_only=True) / "config.json").read_text())
    assert (config["eos_token_id"], config["decoder_start_token_id"], config["vocab_size"]) == (76, 77, 80)
    assert len(caplog.records) == len(warnings)
    for warning in warnings:
        assert re.search(r"src/vocabulary\.txt " + warning, caplog.text)


@pytest.mark.parametrize("damage, message", [
    pytest.param(lambda lines: [*lines[:10], "", *lines[10:]], r"vocabulary\.txt: line 11 is blank;", id="inserted"),
    pytest.param(lambda lines: [*lines[:10], "", *lines[11:]], r"vocabulary\.txt: line 11 is blank;", id="replaced"),
    pytest.param(lambda lines: ["", *lines[:5], "", "", *lines[5:]], r"vocabulary\.txt: lines 1, 7, 8 are blank;",
                 id="several"),
    pytest.param(lambda lines: [f"{line}\r" for line in [*lines[:10], "", *lines[10:]]],
                 r"vocabulary\.txt: line 11 is blank;", id="crlf"),
])
def test_a_vocabulary_txt_with_a_blank_line_inside_is_refused_by_line_number(tiny_ct2, tmp_path, damage, message):
    """A blank line before the last token is a token lost or one too many (every later id is off by one), not another
    model's vocabulary ("has 81 tokens"): refused, naming the file and the line."""
    src = _copy(tiny_ct2, tmp_path)
    tokens = _vocabulary(src)
    (src / "vocabulary.json").unlink()
    (src / "vocabulary.txt").write_text("".join(f"{line}\n" for line in damage(tokens)), encoding="utf-8",
                                        newline="")
    with pytest.raises(ModelError, match=message + r" a Whisper vocabulary has one token per line and no empty token "
                                       r"\(but the unused id just before <\|endoftext\|>\): the file was edited or "
                                       r"damaged\. Re-install or re-download"):
        convert_whisper(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_the_empty_token_just_before_endoftext_is_kept(tiny_ct2, tmp_path, caplog, ending):
    """Multilingual Whisper's id 50256 (before <|endoftext|> at 50257) is an empty token, a blank line in the
    vocabulary.txt of every real multilingual faster-whisper model: it is no damage."""
    src = _copy(tiny_ct2, tmp_path)
    tokens = _vocabulary(src)
    assert tokens[76] == "<|endoftext|>"
    tokens[75] = ""
    (src / "vocabulary.json").unlink()
    (src / "vocabulary.txt").write_bytes("".join(f"{token}{ending}" for token in tokens).encode("utf-8"))
    with caplog.at_level("WARNING", logger="ser_hf.models.ct2_source"):
        config = json.loads((convert_whisper(src, tmp_path / "out", encoder_only=True) / "config.json").read_text())
    assert (config["eos_token_id"], config["decoder_start_token_id"], config["vocab_size"]) == (76, 77, 80)
    assert len(caplog.records) == (ending == "\r\n")


@pytest.mark.parametrize("text, found", [
    ("", r"0 bytes"), ("\n", r"only blank lines, no token"), ("\n\n\n", r"only blank lines, no token"),
    ("\r\n\r\n", r"only blank lines, no token"), ("\r\r", r"only blank lines, no token"),
])
def test_an_empty_vocabulary_txt_is_called_empty(tiny_ct2, tmp_path, caplog, text, found):
    """An empty vocabulary.txt was "ends with 1 blank line(s)", then "has 0 tokens ... another model"."""
    src = _copy(tiny_ct2, tmp_path)
    (src / "vocabulary.json").unlink()
    (src / "vocabulary.txt").write_bytes(text.encode())
    with caplog.at_level("WARNING", logger="ser_hf.models.ct2_source"), pytest.raises(
            ModelError, match=rf"src/vocabulary\.txt is empty \({found}\); expected the model's vocabulary, one token "
                              rf"per line\. Re-install or re-download"):
        convert_whisper(src, tmp_path / "out")
    assert not caplog.records
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make, problem", [
    (lambda path: path.symlink_to(path.parent / "gone.txt"), r"a symbolic link to .*gone.txt', which does not exist"),
    (lambda path: path.mkdir(), r"not a regular file \(a folder, a pipe or a device\)"),
])
def test_a_broken_vocabulary_txt_beside_a_vocabulary_json_names_it(tiny_ct2, tmp_path, make, problem):
    """vocabulary.txt is read before vocabulary.json: a broken one is refused, and the message says the conversion
    uses the vocabulary.json beside it once the broken name is removed."""
    src = _copy(tiny_ct2, tmp_path)
    make(src / "vocabulary.txt")
    with pytest.raises(ModelError, match=rf"src/vocabulary\.txt is {problem}; expected the model's vocabulary\. "
                                         rf".*src/vocabulary\.json is there too, but vocabulary\.txt is read first: "
                                         rf"remove the broken vocabulary\.txt and the conversion uses "
                                         rf"vocabulary\.json\. Or re-install or re-download"):
        convert_whisper(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (src / "vocabulary.txt").rmdir() if (src / "vocabulary.txt").is_dir() else (src / "vocabulary.txt").unlink()
    config = json.loads((convert_whisper(src, tmp_path / "out", encoder_only=True) / "config.json").read_text())
    assert (config["eos_token_id"], config["vocab_size"]) == (76, 80)


@pytest.mark.parametrize("name", ["vocabulary.json", "config.json"])
@pytest.mark.parametrize("make, problem", [
    (lambda path: path.symlink_to(path.parent / "gone.json"), r"a symbolic link to .*gone.json', which does not exist"),
    (lambda path: path.mkdir(), r"not a regular file \(a folder, a pipe or a device\)"),
])
def test_a_vocabulary_or_config_that_is_no_file_is_named_not_taken_for_missing(tiny_ct2, tmp_path, name, make,
                                                                               problem):
    """A dangling config.json was skipped and its suppressed ids silently dropped; a vocabulary that was a link to
    nothing or a folder was reported missing (or, for real Whisper sizes, replaced by default ids without a word)."""
    src = _copy(tiny_ct2, tmp_path)
    (src / name).unlink()
    make(src / name)
    with pytest.raises(ModelError, match=rf"src/{re.escape(name)} is {problem}; expected the model's"):
        convert_whisper(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_vocabulary_txt_ending_in_a_newline_fits(tiny_ct2, tmp_path):
    """ctranslate2 ends every line of vocabulary.txt with a newline: the last one is no token."""
    src = _copy(tiny_ct2, tmp_path)
    tokens = _vocabulary(src)
    (src / "vocabulary.json").unlink()
    (src / "vocabulary.txt").write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    config = json.loads((convert_whisper(src, tmp_path / "out", encoder_only=True) / "config.json").read_text())
    assert (config["eos_token_id"], config["decoder_start_token_id"], config["vocab_size"]) == (76, 77, 80)


# --- C: damaged side files of SRC_DIR: a ModelError naming the file, never a raw traceback -------------------


DAMAGED = {
    "vocabulary.txt bytes": ("vocabulary.txt", b"\xff\xfe\x00bad", r"vocabulary\.txt is not UTF-8 text"),
    "vocabulary.json syntax": ("vocabulary.json", b"{not json", r"vocabulary\.json is not valid JSON"),
    "vocabulary.json object": ("vocabulary.json", b'{"a": 1}', r"vocabulary\.json must hold a JSON list of tokens "
                                                               r"\(strings\), found dict"),
    "vocabulary.json numbers": ("vocabulary.json", b"[1, 2]", r"must hold a JSON list of tokens.*non-string"),
    "tokenizer.json list": ("tokenizer.json", b"[1,2,3]", r"tokenizer\.json must hold a JSON object, found list"),
    "tokenizer.json vocab": ("tokenizer.json", b'{"model": {"vocab": [1]}}', r"tokenizer\.json is not a tokenizers "
                                                                            r"file: expected model\.vocab"),
    "tokenizer.json huge id": ("tokenizer.json", b'{"model": {"vocab": {"a": 99999999999}}}',
                               r"tokenizer\.json: token 'a' has id 99999999999, expected a whole number"),
    "config.json bytes": ("config.json", b"\xff\xfe", r"config\.json is not valid JSON \('utf-8' codec"),
    "config.json list": ("config.json", b"[1, 2]", r"config\.json must hold a JSON object, found list"),
    "suppress_ids int": ("config.json", b'{"suppress_ids": 5}', r"config\.json: suppress_ids must be a list of token "
                                                               r"ids \(integers\), found 5"),
    "suppress_ids strings": ("config.json", b'{"suppress_ids_begin": ["a"]}', r"suppress_ids_begin must be a list"),
    "suppress_ids outside": ("config.json", b'{"suppress_ids": [1, 500]}', r"suppress_ids holds token id\(s\) \[500\] "
                                                                          r"outside the model's vocabulary of 80"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_side_files_are_reported(tiny_ct2, tmp_path, capsys, case):
    name, data, message = DAMAGED[case]
    src = _copy(tiny_ct2, tmp_path)
    if name == "tokenizer.json":
        (src / "vocabulary.json").unlink()  # read only when there is no vocabulary.json/.txt
    (src / name).write_bytes(data)
    with pytest.raises(ModelError, match=message + r".*(Re-install or re-download|shipped with this model)"):
        convert_whisper(src, tmp_path / "out")
    assert main(["models", "convert", str(src), str(tmp_path / "out")]) == 2
    assert f"ser-hf: error: {src / name}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_src_dir_symlink_loop_is_reported(tiny_ct2, tmp_path, capsys):
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    with pytest.raises(ModelError, match=r"directory .*loop1 is a symbolic link loop.*Pass a directory holding "
                                         r"model\.bin"):
        convert_whisper(tmp_path / "loop1", tmp_path / "out")
    assert main(["models", "convert", str(tmp_path / "loop1"), str(tmp_path / "out")]) == 2
    assert "symbolic link loop" in capsys.readouterr().err


# --- D: wording -----------------------------------------------------------------------------------------------


def test_src_dir_that_is_a_file_or_holds_a_model_bin_folder_is_named_so(tiny_ct2, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ModelError, match=r"directory .*afile is a file, not a folder\. Pass the directory holding "
                                         r"model\.bin"):
        convert_whisper(tmp_path / "afile", tmp_path / "out")
    src = _copy(tiny_ct2, tmp_path)
    (src / "model.bin").unlink()
    (src / "model.bin").mkdir()
    with pytest.raises(ModelError, match=r"src/model\.bin is not a regular file \(a folder, a pipe or a device\); "
                                         r"expected the model's weights"):
        convert_whisper(src, tmp_path / "out")


def test_cli_names_only_force_to_replace_an_earlier_conversion(tiny_ct2, tmp_path, capsys):
    assert main(["models", "convert", str(tiny_ct2), str(tmp_path / "out"), "--encoder-only"]) == 0
    capsys.readouterr()
    assert main(["models", "convert", str(tiny_ct2), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "already holds an earlier conversion; pass --force to replace it" in err and "overwrite=True" not in err


def test_a_symlink_loop_is_called_a_loop(tiny_ct2, tmp_path):
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    with pytest.raises(ModelError, match=r"^--out x is a symbolic link loop \(it leads back to itself"):
        refuse_dangling_link(tmp_path / "loop1", "--out x", "pass another.")
    (tmp_path / "dangling").symlink_to("nowhere")
    with pytest.raises(ModelError, match=r"is a symbolic link to 'nowhere', which does not exist; pass another"):
        refuse_dangling_link(tmp_path / "dangling", "--out y", "pass another.")
    with pytest.raises(ModelError, match=r"OUT_DIR .*loop1/sub cannot be created: .*loop1 is a symbolic link loop"):
        convert_whisper(tiny_ct2, tmp_path / "loop1" / "sub", argument="OUT_DIR")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_src_dir_is_not_called_missing(tmp_path):
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0)
    try:
        with pytest.raises(ModelError, match=r"inner cannot be read \(Permission denied\)"):
            convert_whisper(locked / "inner", tmp_path / "out")
    finally:
        locked.chmod(0o700)
