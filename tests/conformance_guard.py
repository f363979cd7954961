"""Fail any test that reads a file beside the repository instead of inside it.

A user's clone has no ``../shared`` (or anything else) next to it, so a test that reads there passes
on a developer's machine and breaks everywhere else. An audit hook records every ``open`` of a path
under the repository's parent folder but outside the repository (and outside the running
Python's own folders); the ``conftest`` fixture turns a
record into a failure of the test that made it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
_OUTSIDE = str(REPOSITORY.parent) + os.sep
_INSIDE = str(REPOSITORY) + os.sep
# The Python running the tests may itself live beside the repository (a venv in the parent folder).
_PYTHON = tuple({os.path.abspath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})

reads_outside: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event != "open" or not args or not isinstance(args[0], str | bytes | os.PathLike):
        return
    try:
        path = os.path.abspath(os.fsdecode(args[0]))
    except (TypeError, ValueError):
        return
    if path.startswith(_OUTSIDE) and not (path + os.sep).startswith((_INSIDE, *_PYTHON)):
        reads_outside.append(path)


def install() -> None:
    sys.addaudithook(_audit)
