"""What PostgreSQL can store: ``text`` and ``jsonb`` refuse a NUL character, and lone surrogates are
not UTF-8 (and ``jsonb`` refuses their escapes too). One rule, used where user code's text is stored:
an outcome's error, trace and output are made storable (U+FFFD in place of each such character);
a job's args and metadata that hold one are refused before any SQL, naming where.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # in a str, any surrogate is a lone one
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """``text`` with NUL characters and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text) if _UNSTORABLE.search(text) else text


def _may_hold_unstorable(json_text: str) -> bool:
    """A cheap first look at JSON text: False means it certainly holds nothing unstorable."""
    return (
        "\\u0000" in json_text
        or "\\ud" in json_text
        or "\\uD" in json_text
        or bool(_UNSTORABLE.search(json_text))
    )


def _storable_value(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [_storable_value(v) for v in value]
    if isinstance(value, dict):
        return {storable(str(k)): _storable_value(v) for k, v in value.items()}
    return value


def storable_json(text: str) -> str:
    """JSON text whose strings hold no NUL and no lone surrogate (valid pairs are kept)."""
    if not _may_hold_unstorable(text):
        return text
    try:
        value = json.loads(text)
    except ValueError:  # not JSON after all: store it as a JSON string
        return json.dumps(storable(text))
    return json.dumps(_storable_value(value), separators=(",", ":"))


def _first_unstorable(value: Any, path: str) -> tuple[str, str] | None:
    """Where (``a[2].b``; ``a key of a``) the first string or key in ``value`` holds a character
    PostgreSQL cannot store, and that character; None if there is none."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return (path, found.group()) if found else None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if hit := _first_unstorable(item, f"{path}[{index}]"):
                return hit
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (found := _UNSTORABLE.search(key)):
                return (f"a key of {path}" if path else "a key", found.group())
            key_path = (f"{path}.{key}" if path else key) if isinstance(key, str) else f"{path}[{key!r}]"
            if hit := _first_unstorable(item, key_path):
                return hit
    return None


def _describe(where: str, char: str) -> str:
    if char == "\x00":
        return f"{where}: holds a NUL character (\\u0000), which PostgreSQL cannot store"
    return f"{where}: holds a lone surrogate (\\u{ord(char):04x}), which is not text"


def find_unstorable(value: Any, path: str) -> str | None:
    """The path (``args.a[2]``) of the first string or key in ``value`` that PostgreSQL cannot store."""
    hit = _first_unstorable(value, path)
    return hit[0] if hit else None


def unstorable_problem(value: Any, path: str = "") -> str | None:
    """One line naming where ``value`` holds text PostgreSQL cannot store and what it is
    (``args.note: holds a NUL character (\\u0000), which PostgreSQL cannot store``); None if nothing.
    A command line's bytes that are not UTF-8 arrive as lone surrogates, and are named as such."""
    hit = _first_unstorable(value, path)
    return _describe(*hit) if hit else None


def unstorable_in(value: Any, json_text: str, path: str) -> str | None:
    """Like ``unstorable_problem``, after a cheap look at ``value``'s JSON text (bulk inserts stay fast)."""
    return unstorable_problem(value, path) if _may_hold_unstorable(json_text) else None
