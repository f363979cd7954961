"""Each rule is defined once, in the module that owns it, and every other module calls that module.

Issue 14 item 1: the same rule written in several places drifts apart (a queue name one place accepts
and another refuses). Each test scans the package's source (``ast``, and plain text where a pattern is
easier to see) for a second copy of one rule outside its owner.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "supervisor" / "river_supervisor"


@cache
def sources() -> dict[str, str]:
    """``module name -> source`` for every module of the package (``commands.run``, ...)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found[".".join(path.relative_to(PACKAGE).with_suffix("").parts)] = path.read_text(encoding="utf-8")
    return found


@cache
def trees() -> dict[str, ast.Module]:
    return {name: ast.parse(text, name) for name, text in sources().items()}


def _walk_outside(owner: str) -> Iterator[tuple[str, ast.AST]]:
    for name, tree in trees().items():
        if name != owner:
            for node in ast.walk(tree):
                yield name, node


def _where(name: str, node: ast.AST) -> str:
    return f"{name}:{getattr(node, 'lineno', '?')}"


def test_the_first_line_of_an_error_is_taken_in_errors_only() -> None:
    """``errors.first_line``: no ``....splitlines()[0]`` (or ``[-1]``) of an error elsewhere."""
    copies = [
        _where(name, node)
        for name, node in _walk_outside("errors")
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "splitlines"
        and isinstance(node.slice, ast.Constant | ast.UnaryOp)
    ]
    assert not copies, f"use errors.first_line: {copies}"


def test_what_a_retry_can_outlive_is_db_transient_only() -> None:
    """``db.TRANSIENT``: no other module lists psycopg's connection errors or names a RECOVERABLE."""
    copies = []
    for name, node in _walk_outside("db"):
        if isinstance(node, ast.Tuple | ast.BinOp):
            named = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if {"OperationalError", "InterfaceError"} <= named:
                copies.append(_where(name, node))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "RECOVERABLE" for t in node.targets
        ):
            copies.append(_where(name, node))
    assert not copies, f"catch db.TRANSIENT: {copies}"


def test_node_labels_are_made_by_nodes_labels_only() -> None:
    """``nodes.labels``: ``node (node_id)`` for a shared name is written in ``nodes`` only."""
    pattern = re.compile(r"\(\{[^}]*node_id[^}]*\}\)")
    copies = [
        f"{name}:{text[: m.start()].count(chr(10)) + 1}"
        for name, text in sources().items()
        if name != "nodes"
        for m in pattern.finditer(text)
    ]
    assert not copies, f"use nodes.labels: {copies}"
