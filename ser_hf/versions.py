"""Installed package versions, as result files, exported models and CV identities record them."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__all__ = ["installed_version", "installed_versions"]


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``; None where it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """``{name: installed_version(name)}`` for each of ``names``, in their order."""
    return {name: installed_version(name) for name in names}
