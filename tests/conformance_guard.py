"""Fail any test that reads a file beside the repository instead of inside it.

A user's clone has nothing next to it (no project notes, no other checkouts), so a test that reads
there passes on a developer's machine and breaks everywhere else. An audit hook records every
``open`` of a path inside what lay beside the repository when the run started (outside the running
Python's own folders); the ``conftest`` fixture turns a record into a failure of the test that made
it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
# The Python running the tests may itself live beside the repository (a venv in the parent folder).
_PYTHON = tuple({os.path.abspath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})


def _siblings() -> tuple[str, ...]:
    """What lies beside the repository when the run starts: the folders a clone elsewhere lacks.

    Taken once, at the start, so that what tests create there later (the repository may sit in /tmp,
    beside pytest's own temporary folders and our private clusters) is not counted.
    """
    try:
        names = os.listdir(REPOSITORY.parent)
    except OSError:
        return ()
    return tuple(
        os.path.join(REPOSITORY.parent, name)
        for name in names
        if name != REPOSITORY.name and not name.startswith("pytest-of-")
    )


_SIBLINGS = _siblings()

reads_outside: list[str] = []


def _is_beside_the_repository(path: str) -> bool:
    if path.startswith(_PYTHON):
        return False
    return any(path == sibling or path.startswith(sibling + os.sep) for sibling in _SIBLINGS)


def _audit(event: str, args: tuple) -> None:
    if event != "open" or not args or not isinstance(args[0], str | bytes | os.PathLike):
        return
    try:
        path = os.path.abspath(os.fsdecode(args[0]))
    except (TypeError, ValueError):
        return
    if _is_beside_the_repository(path):
        reads_outside.append(path)


def install() -> None:
    sys.addaudithook(_audit)
