"""``from ser_hf import X``: every public name resolves, lazily, and the README lists them."""

import subprocess
import sys
from pathlib import Path

import ser_hf


def test_every_public_name_resolves_to_its_module():
    for name, module in ser_hf.PUBLIC_API.items():
        value = getattr(ser_hf, name)
        assert value.__module__ == module or getattr(sys.modules[module], name) is value, name
    assert set(ser_hf.__all__) == {"__version__", *ser_hf.PUBLIC_API}


def test_an_unknown_name_says_what_exists():
    try:
        ser_hf.EmotionRecogniser  # noqa: B018 - British spelling on purpose
    except AttributeError as err:
        assert "EmotionRecognizer" in str(err)
    else:
        raise AssertionError("an unknown name resolved")


def test_import_ser_hf_loads_neither_torch_nor_transformers():
    code = "import sys, ser_hf; print('torch' in sys.modules, 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["False"] * 2


def test_the_readme_lists_the_public_api():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{name}`" in section for name in ser_hf.PUBLIC_API)
