"""A safetensors file whose 8-byte header length cannot be right: the message gives the length, the limit, the size."""

from __future__ import annotations

import re
import struct

import pytest

from ser_hf.errors import ModelError
from ser_hf.models.safetensors_header import MAX_HEADER_BYTES, safetensors_header


@pytest.mark.parametrize("length,body,beyond", [
    (2**62, b"{}", "safetensors' limit"),                   # a huge length in a 10-byte file
    (MAX_HEADER_BYTES + 1, b"{}" * 40, "safetensors' limit"),  # just over the limit, far over the file
    (1000, b"{}" + b"\0" * 90, "the file's size"),           # under the limit, past the end of the file
])
def test_header_length_message_names_the_length_the_limit_and_the_size(tmp_path, length, body, beyond):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", length) + body)
    size = 8 + len(body)
    with pytest.raises(ModelError) as caught:
        safetensors_header(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"claims a {length}-byte header, beyond {beyond}" in message
    assert f"at most {MAX_HEADER_BYTES} bytes" in message  # the limit, never min(limit, size - 8)
    assert f"this file is {size} bytes in all, so at most {size - 8} can follow" in message
    assert re.search(r"truncated or not a safetensors file: save it again", message)
