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


def find_unstorable(value: Any, path: str) -> str | None:
    """The path (``args.a[2]``) of the first string or key in ``value`` that PostgreSQL cannot store."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if found := find_unstorable(item, f"{path}[{index}]"):
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            key_path = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"
            if isinstance(key, str) and _UNSTORABLE.search(key):
                return f"{path} (a key)"
            if found := find_unstorable(item, key_path):
                return found
    return None


def unstorable_in(value: Any, json_text: str, path: str) -> str | None:
    """Like ``find_unstorable``, after a cheap look at ``value``'s JSON text (bulk inserts stay fast)."""
    return find_unstorable(value, path) if _may_hold_unstorable(json_text) else None
