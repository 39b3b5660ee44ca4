"""The numpy reader of CTranslate2 ``model.bin`` files, checked against files ctranslate2 itself writes.

The reference files come from ctranslate2's own converter code (``WhisperLoader``) applied to a tiny
random transformers Whisper, so the reader is tested on the real layout, every dtype, and aliases.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_hf.errors import ModelError
from ser_hf.models.ct2_reader import parse_ct2_bytes, read_ct2_model

ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 (test dependency) writes the reference model.bin files")

# 76 plain tokens, then Whisper's specials, so <|endoftext|> = 76 and <|startoftranscript|> = 77.
TINY_VOCAB = [f"tok{i}" for i in range(76)] + ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|en|>"]


def tiny_hf_whisper(seed: int = 0):
    """A random 2-layer, 64-wide transformers Whisper (full 1500 encoder positions, as ctranslate2 needs)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=len(TINY_VOCAB), num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=96,
        max_source_positions=1500, max_target_positions=32, pad_token_id=76, bos_token_id=76, eos_token_id=76,
        decoder_start_token_id=77, suppress_tokens=[], begin_suppress_tokens=[76],
    )
    return WhisperForConditionalGeneration(config).eval()


def write_tiny_ct2_whisper(out_dir: Path, quantization: str | None = None, seed: int = 0):
    """Writes a tiny random Whisper as a CTranslate2 model directory with ctranslate2's own converter code.

    Returns:
        (directory, the transformers model it came from, the ctranslate2 spec that was saved)
    """
    from ctranslate2.converters.transformers import WhisperLoader

    model = tiny_hf_whisper(seed)
    spec = WhisperLoader().get_model_spec(model)
    spec.register_vocabulary(TINY_VOCAB)
    spec.config.suppress_ids, spec.config.suppress_ids_begin = [], [76]
    spec.config.lang_ids, spec.config.alignment_heads = [79], [[1, 0]]
    spec.validate()
    spec.optimize(quantization=quantization)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    return out_dir, model, spec


@pytest.fixture(scope="module")
def tiny_f32(tmp_path_factory):
    return write_tiny_ct2_whisper(tmp_path_factory.mktemp("ct2") / "tiny-f32")


@pytest.fixture(scope="module")
def tiny_bytes(tiny_f32) -> bytes:
    return (tiny_f32[0] / "model.bin").read_bytes()


def test_reads_header_variables_and_aliases(tiny_f32):
    directory, _, spec = tiny_f32
    model = read_ct2_model(directory)  # a directory resolves to its model.bin
    assert (model.binary_version, model.spec, model.spec_revision) == (6, "WhisperSpec", 3)
    written = dict(spec.variables(ordered=True))
    aliases = {name: value for name, value in written.items() if isinstance(value, str)}
    assert model.aliases == aliases
    assert model.aliases["decoder/projection/weight"] == "decoder/embeddings/weight"
    for name, value in written.items():
        if isinstance(value, str):
            continue
        expected = value.to("float32").numpy() if value.dtype != "int8" else value.numpy()
        np.testing.assert_array_equal(model[name], expected, err_msg=name)
    assert model.dtype_of("encoder/conv1/weight") == "float32"
    assert model.dtype_of("decoder/projection/weight") == "float32"
    assert int(model["encoder/num_heads"]) == 2 and int(model["decoder/num_heads"]) == 4
    assert "encoder/conv1/weight" in model and "nope" not in model and model.get("nope") is None
    assert model.names("encoder/conv1/") == ["encoder/conv1/bias", "encoder/conv1/weight"]


@pytest.mark.parametrize("quantization", ["float16", "bfloat16", "int8", "int16"])
def test_reads_every_dtype(tmp_path, tiny_f32, quantization):
    directory, _, _ = write_tiny_ct2_whisper(tmp_path / quantization, quantization=quantization)
    model, reference = read_ct2_model(directory), read_ct2_model(tiny_f32[0])
    weight = "encoder/layer_0/ffn/linear_0/weight"
    assert model.dtype_of(weight) == quantization
    assert model.dtype_of("encoder/layer_0/ffn/layer_norm/gamma") == ("float32" if quantization.startswith("int") else quantization)
    if quantization in ("float16", "bfloat16"):
        # bfloat16 is decoded to float32 (numpy has no bfloat16); both keep ~3 significant digits.
        assert model[weight].dtype in (np.float16, np.float32)
        np.testing.assert_allclose(model[weight].astype(np.float32), reference[weight], rtol=1e-2, atol=1e-3)
    else:
        assert model[weight].dtype == np.dtype(quantization) and f"{weight.rsplit('/', 1)[0]}/weight_scale" in model


def test_reads_a_model_split_in_parts(tmp_path, tiny_bytes):
    cut = len(tiny_bytes) // 3
    (tmp_path / "model.bin.part1").write_bytes(tiny_bytes[:cut])
    (tmp_path / "model.bin.part2").write_bytes(tiny_bytes[cut:])
    model = read_ct2_model([tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"])
    np.testing.assert_array_equal(model["encoder/conv2/weight"], parse_ct2_bytes(tiny_bytes)["encoder/conv2/weight"])
    with pytest.raises(ModelError, match="unexpected bytes follow the end"):
        read_ct2_model([tmp_path / "model.bin.part1", tmp_path / "model.bin.part2", tmp_path / "model.bin.part2"])
    with pytest.raises(ModelError, match="not a CTranslate2 model.bin: its binary version is"):
        read_ct2_model([tmp_path / "model.bin.part2", tmp_path / "model.bin.part1"])


@pytest.mark.parametrize("keep", [0, 3, 9, 30, 0.5, -1], ids=["empty", "version", "spec-name", "first-name", "mid-data", "last-byte"])
def test_truncated_file_is_reported(tiny_bytes, keep):
    end = int(len(tiny_bytes) * keep) if isinstance(keep, float) else keep if keep >= 0 else len(tiny_bytes) + keep
    with pytest.raises(ModelError, match=r"model.bin is truncated: reading .* needs \d+ bytes at offset \d+"):
        parse_ct2_bytes(tiny_bytes[:end], source="model.bin")


def _first_variable_offsets(data: bytes) -> dict[str, int]:
    """Byte offsets of the first variable's fields (the header layout is in ser_hf.models.ct2_reader)."""
    spec_len = struct.unpack_from("<H", data, 4)[0]
    name_at = 4 + 2 + spec_len + 4 + 4
    name_len = struct.unpack_from("<H", data, name_at)[0]
    rank_at = name_at + 2 + name_len
    dtype_at = rank_at + 1 + 4 * data[rank_at]
    return {"spec_nul": 4 + 2 + spec_len - 1, "rank": rank_at, "dtype": dtype_at, "size": dtype_at + 1}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("version", struct.pack("<I", 99), "binary version is 99, expected 1 to 6"),
        ("spec_nul", b"x", "should be a NUL-terminated string"),
        ("rank", b"\x40", "has rank 64, expected at most 8"),
        ("dtype", b"\x09", "has dtype id 9, expected 0 to 5"),
        ("size", struct.pack("<I", 12), "should take \\d+ bytes, the file says 12"),
    ],
    ids=["version", "spec-name", "rank", "dtype", "size"],
)
def test_corrupted_structure_is_reported(tiny_bytes, field, value, message):
    offset = 0 if field == "version" else _first_variable_offsets(tiny_bytes)[field]
    corrupted = tiny_bytes[:offset] + value + tiny_bytes[offset + len(value) :]
    with pytest.raises(ModelError, match=message):
        parse_ct2_bytes(corrupted, source="model.bin")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ModelError, match=r"model file .*model.bin does not exist"):
        read_ct2_model(tmp_path)
