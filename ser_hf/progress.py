"""Progress bars that show only where someone watches: enabled, on a terminal, and not silenced.

``ser-hf -q`` (and any run with ``TQDM_DISABLE=1``) silences them; a log file or a pipe gets none, so
batch logs stay readable.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_bar(enabled: bool = True, **kwargs) -> tqdm:
    """A ``tqdm`` bar; ``disable=None`` is tqdm's "only on a terminal", an explicit ``disable`` beats the env."""
    silenced = not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(disable=True if silenced else None, **kwargs)
