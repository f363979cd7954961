"""Every SQL statement of river-supervisor, loaded once from the ``*.sql`` files beside this module.

Each file groups the statements of one table family. A statement starts at a header line
``-- name: <table>_<verb>[_many]`` and runs to the next header; ``%(name)s`` are its parameters.
Migrations live under ``migrations/<line>/NNN_name.up.sql`` and are read by ``schema``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

_HEADER = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.MULTILINE)


def parse(text: str, source: str = "<sql>") -> dict[str, str]:
    """Split one file into ``{name: statement}``; text before the first header is a comment."""
    found: dict[str, str] = {}
    headers = list(_HEADER.finditer(text))
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        name = header.group(1)
        if name in found:
            raise ValueError(f"{source}: query {name} defined twice")
        found[name] = text[header.end() : end].strip()
    return found


def _load_queries() -> Mapping[str, str]:
    merged: dict[str, str] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, statement in parse(entry.read_text(encoding="utf-8"), entry.name).items():
            if name in merged:
                raise ValueError(f"{entry.name}: query {name} defined twice")
            merged[name] = statement
    return MappingProxyType(merged)


queries: Mapping[str, str] = _load_queries()


@dataclass(frozen=True, slots=True)
class Migration:
    line: str
    version: int
    name: str
    up: str
    down: str | None


def migrations(line: str) -> list[Migration]:
    """The migrations of one line (``main`` or ``supervisor``), in version order."""
    folder = resources.files(__name__).joinpath("migrations", line)
    files = {entry.name: entry for entry in folder.iterdir() if entry.name.endswith(".sql")}
    found: list[Migration] = []
    for file_name in sorted(files):
        match = re.fullmatch(r"(\d{3})_([a-z0-9_]+)\.up\.sql", file_name)
        if not match:
            continue
        down_name = file_name.replace(".up.sql", ".down.sql")
        down = files[down_name].read_text(encoding="utf-8") if down_name in files else None
        found.append(
            Migration(
                line=line,
                version=int(match.group(1)),
                name=match.group(2),
                up=files[file_name].read_text(encoding="utf-8"),
                down=down,
            )
        )
    return found
