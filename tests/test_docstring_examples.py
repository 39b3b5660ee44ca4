"""The ``>>>`` examples in ser_hf's docstrings run with the suite, so an example the code no longer matches fails here
instead of rotting unseen.

They run as ``python -m pytest --doctest-modules ser_hf`` runs them (the standard :mod:`doctest` parser), only
stricter: no option flag beyond an example's own (pytest adds ``ELLIPSIS``), so an example whose output elides with
``...`` says ``# doctest: +ELLIPSIS`` and plain ``python -m doctest`` agrees too. An example that needs what a test
machine lacks (a trained checkpoint, a Hub model, a real corpus, a server) marks those lines ``# doctest: +SKIP``
and stays as documentation.

Each module's examples run in an empty temporary folder with ``$SER_HF_CACHE`` inside it, and must leave it empty:
run by ``pytest --doctest-modules`` from the repository root, a file they write would land in the repository, and a
cache entry in the user's cache (write into a ``tempfile.TemporaryDirectory()``, or mark the line ``+SKIP``).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ser_hf"

#: Modules that import an optional extra's packages when imported, or whose examples use them: module -> (extra, the
#: packages). Where one is not installed the module's examples are skipped, naming the extra; any other module that
#: cannot be imported fails.
NEEDS_EXTRA: dict[str, tuple[str, tuple[str, ...]]] = {
    "ser_hf.service.access": ("serve", ("fastapi",)),  # its example builds an app
    "ser_hf.service.app": ("serve", ("fastapi", "httpx", "uvicorn")),  # its examples: fastapi's TestClient, uvicorn
    "ser_hf.service.live": ("serve", ("fastapi",)),
    "ser_hf.service.speakers": ("serve", ("fastapi",)),
}

#: What doctest reads a closing fence right under an example's output as.
FENCE_HINT = (
    "\nA closing ``` right under an example's output (or under a statement with none) is read as that output: leave "
    "a blank line before the fence."
)


def module_files() -> dict[str, Path]:
    """Every module of ser_hf by name, found on disk without importing anything (``__main__`` left out: importing it
    runs the command line)."""
    found: dict[str, Path] = {}

    def walk(folder: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(folder)], prefix):
            leaf = info.name.rsplit(".", 1)[1]
            if info.ispkg:
                found[info.name] = folder / leaf / "__init__.py"
                walk(folder / leaf, info.name + ".")
            elif leaf != "__main__":
                found[info.name] = folder / f"{leaf}.py"

    walk(PACKAGE, "ser_hf.")
    return found


MODULES = module_files()
#: The modules whose source holds an example; read as text, so collecting this file imports nothing.
WITH_EXAMPLES = sorted(name for name, path in MODULES.items() if ">>>" in path.read_text(encoding="utf-8"))


def run_examples(module: types.ModuleType) -> tuple[int, doctest.TestResults, str]:
    """Run every example in ``module``'s docstrings: ``(examples found, skipped ones included; results; the failures
    as doctest reports them)``."""
    runner = doctest.DocTestRunner(optionflags=0)
    report: list[str] = []
    found = 0
    for test in doctest.DocTestFinder(exclude_empty=True).find(module):
        found += len(test.examples)
        runner.run(test, out=report.append)
    return found, runner.summarize(verbose=False), "".join(report)


def import_for_examples(name: str) -> types.ModuleType:
    extra, packages = NEEDS_EXTRA.get(name, ("", ()))
    missing = [package for package in packages if importlib.util.find_spec(package) is None]
    if missing:
        pytest.skip(f"{name}'s examples need the {extra!r} extra ({', '.join(missing)} not installed): "
                    f"pip install 'ser-hf[{extra}]'")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        pytest.fail(f"{name} cannot be imported ({err}); if {err.name!r} belongs to an optional extra, list the "
                    f"module in NEEDS_EXTRA with the extra, so that its examples are skipped where it is missing")


def test_modules_are_found():
    # A walk that found nothing would leave every example untested while the suite stays green.
    assert {"ser_hf.emotions", "ser_hf.evaluation.metrics.core", "ser_hf.service.app"} <= set(MODULES)
    assert "ser_hf.__main__" not in MODULES
    assert len(WITH_EXAMPLES) > 50


def test_modules_that_need_an_extra_exist():
    assert set(NEEDS_EXTRA) <= set(MODULES), f"stale NEEDS_EXTRA entries: {sorted(set(NEEDS_EXTRA) - set(MODULES))}"


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SER_HF_CACHE", str(tmp_path / "cache"))
    found, results, report = run_examples(import_for_examples(name))
    assert found, (
        f"{MODULES[name]} holds '>>>' but doctest finds no example in it: an example outside a docstring of the module,"
        " its classes or their functions is never run; move it into one"
    )
    hint = FENCE_HINT if "```" in report else ""
    assert not results.failed, f"{results.failed} of {results.attempted} examples of {name} failed:\n{report}{hint}"
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    assert not left, f"the examples of {name} left files in the working folder or the ser_hf cache: {left}"


def test_a_broken_example_fails():
    broken = types.ModuleType("broken_examples")
    broken.__doc__ = ">>> 1 + 1\n3\n"
    assert run_examples(broken)[1] == doctest.TestResults(failed=1, attempted=1)


def test_a_fence_right_under_the_output_fails_and_a_blank_line_before_it_passes():
    fenced = types.ModuleType("fenced_examples")
    fenced.__doc__ = "Example:\n    ```python\n    >>> 1 + 1\n    2\n    ```\n"
    assert run_examples(fenced)[1].failed == 1
    fenced.__doc__ = "Example:\n    ```python\n    >>> 1 + 1\n    2\n\n    ```\n"
    assert run_examples(fenced)[1] == doctest.TestResults(failed=0, attempted=1)


def test_skipped_examples_are_counted_but_not_run():
    skipped = types.ModuleType("skipped_examples")
    skipped.__doc__ = '>>> load("outputs/rav4")  # doctest: +SKIP\n'
    found, results, _ = run_examples(skipped)
    assert (found, results) == (1, doctest.TestResults(failed=0, attempted=0))
