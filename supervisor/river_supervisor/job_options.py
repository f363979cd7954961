"""The names a job carries, one rule each: queue names, job kinds and periodic ids, as River accepts them.

Every place that takes a queue or a kind (the config file, plugin declarations, ``enqueue``, the insert
path and the public insert API) asks this module, so a name one of them accepts the others accept too,
and a queue River's Go clients can work is a queue we can configure. Pure: no database, no I/O.
"""

from __future__ import annotations

import re

__all__ = [
    "KIND_MAX",
    "KIND_RULE",
    "QUEUE_NAME_MAX",
    "QUEUE_NAME_RULE",
    "is_valid_kind",
    "is_valid_periodic_id",
    "is_valid_queue_name",
]

# riverqueue/river client.go validateQueueName: not empty, at most 64 bytes, and this pattern. The
# `|` inside the class is River's (it makes `a|b` valid there too); we accept what River accepts so
# that a queue a Go service inserts into can be configured here.
_QUEUE_NAME = re.compile(r"(?:[a-z0-9])+(?:[_|\-]?[a-z0-9]+)*")
QUEUE_NAME_MAX = 64
QUEUE_NAME_RULE = "lower-case letters and digits in parts joined by one '_' or '-', at most 64 characters"

# rivercommon.UserSpecifiedIDOrKindRE, River's pattern for job kinds and periodic job ids (Go's \w is
# ASCII: no other letters), shorter than 128 bytes (Go's len; '·' takes two) as River requires.
_KIND = re.compile(r"\w[\w\-\[\]<>/.·:+]+", re.ASCII)
KIND_MAX = 127
KIND_RULE = (
    "a letter, digit or '_', then at least one of letters, digits, '_' and - [ ] < > / . · : +,"
    " at most 127 bytes"
)


def is_valid_queue_name(name: object) -> bool:
    """Whether River would accept ``name`` as a queue name (what ``QUEUE_NAME_RULE`` says)."""
    return isinstance(name, str) and len(name) <= QUEUE_NAME_MAX and _QUEUE_NAME.fullmatch(name) is not None


def is_valid_kind(kind: object) -> bool:
    """Whether River would accept ``kind`` as a job kind (what ``KIND_RULE`` says)."""
    return isinstance(kind, str) and len(kind.encode()) <= KIND_MAX and _KIND.fullmatch(kind) is not None


def is_valid_periodic_id(periodic_id: object) -> bool:
    """Whether River would accept ``periodic_id`` as a ``PeriodicJob.ID``: the kind rule, as River's."""
    return is_valid_kind(periodic_id)
