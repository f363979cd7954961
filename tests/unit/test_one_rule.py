"""Each rule is defined once, in the module that owns it, and every other module calls that module.

Issue 14 item 1: the same rule written in several places drifts apart (a queue name one place accepts
and another refuses). Each test scans the package's source (``ast``, and plain text where a pattern is
easier to see) for a second copy of one rule outside its owner.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

from river_supervisor import (
    alerts,
    config_values,
    db,
    drift,
    durations,
    errors,
    job_options,
    leader_events,
    nodes,
    schedules,
)
from river_supervisor.config_values import Invalid
from river_supervisor.insert import JobSpec
from river_supervisor.plugins import Plugin, duration_seconds

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


def _owner(module: ModuleType) -> str:
    """The owning module's name as ``sources`` keys it (follows the module if it moves)."""
    return module.__name__.removeprefix("river_supervisor.")


def _mentioning(words: tuple[str, ...], *, outside: str) -> list[str]:
    """The modules other than ``outside`` whose source holds one of ``words``."""
    return [name for name, text in sources().items() if name != outside and any(w in text for w in words)]


def _where(name: str, node: ast.AST) -> str:
    return f"{name}:{getattr(node, 'lineno', '?')}"


def test_the_first_line_of_an_error_is_taken_in_errors_only() -> None:
    """``errors.first_line``: no ``....splitlines()[0]`` (or ``[-1]``) of an error elsewhere."""
    copies = [
        _where(name, node)
        for name, node in _walk_outside(_owner(errors))
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
    for name, node in _walk_outside(_owner(db)):
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
        if name != _owner(nodes)
        for m in pattern.finditer(text)
    ]
    assert not copies, f"use nodes.labels: {copies}"


def _compiled_patterns() -> Iterator[tuple[str, ast.Call, str]]:
    """Every ``re.compile("...")`` of the package: (module, call, pattern)."""
    for name, tree in trees().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "compile"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield name, node, node.args[0].value


# What River's queue-name pattern and its kind/periodic-id pattern are made of.
QUEUE_AND_KIND_PARTS = ("[_|\\-]", "(?:[a-z0-9])", "\\[\\]<>", "·")


def test_queue_name_and_kind_patterns_live_in_job_options_only() -> None:
    """River's queue-name and kind/periodic-id patterns are compiled in ``job_options`` and nowhere else."""
    copies = [
        _where(name, node)
        for name, node, pattern in _compiled_patterns()
        if name != _owner(job_options) and any(part in pattern for part in QUEUE_AND_KIND_PARTS)
    ]
    assert not copies, f"use job_options.is_valid_queue_name / is_valid_kind: {copies}"


def test_duration_grammars_live_in_durations_only() -> None:
    """Both duration grammars (the file's and Go's for ``@every``) are in ``durations``, nowhere else."""
    copies = [
        _where(name, node)
        for name, node, pattern in _compiled_patterns()
        if name != _owner(durations) and re.search(r"\bms\|", pattern)
    ]
    assert not copies, f"use durations.parse_duration / parse_go_duration: {copies}"


def test_missed_and_overlap_policies_are_listed_in_schedules_only() -> None:
    policy_sets = ({"skip", "latest", "all"}, {"allow", "skip"})
    copies = []
    for name, node in _walk_outside(_owner(schedules)):
        items = None
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Call):
            items = node.args
        constants = {i.value for i in items or () if isinstance(i, ast.Constant)}
        if items and len(constants) == len(items) and constants in policy_sets:
            copies.append(_where(name, node))
    assert not copies, f"use schedules.MISSED_POLICIES / OVERLAP_POLICIES: {copies}"


def _accepts(check: Callable[[object], object], value: object) -> bool:
    try:
        check(value)
    except ValueError:  # InvalidJob, DeclarationError, config's Invalid, CronError are all ValueErrors
        return False
    except Invalid:
        return False
    return True


QUEUE_SAMPLES = ("default", "a" * 64, "a" * 65, "a-b_c", "a|b", "a.b", "A", "-a", "a b", "é", "", 7)
KIND_SAMPLES = ("email", "a.b:c+d/e<f>[g]·h", "x" * 127, "x" * 126 + "·", "é.kind", "a", "a b", "a,b", None)


def test_every_queue_name_check_answers_alike() -> None:
    """The config file, a plugin's declaration and an insert accept exactly River's queue names."""
    plugin = Plugin("sample")
    checks = {
        "config": config_values.queue_name().check,
        "plugin job": lambda q: plugin.job(f"k{id(q)}", queue=q),
        "plugin periodic": lambda q: plugin.periodic("sample.kind", id=f"p{id(q)}", every=60, queue=q),
        "insert": lambda q: JobSpec("sample.kind", queue=q).validate(),  # type: ignore[arg-type]
    }
    for sample in QUEUE_SAMPLES:
        answers = {where: _accepts(check, sample) for where, check in checks.items()}
        assert set(answers.values()) == {job_options.is_valid_queue_name(sample)}, (sample, answers)


def test_every_kind_check_answers_alike() -> None:
    """A plugin's job kind, its periodic id and an insert's kind follow River's one pattern (ASCII \\w)."""
    plugin = Plugin("sample")
    checks = {
        "plugin job": lambda k: plugin.job(k),
        "plugin periodic id": lambda k: plugin.periodic("sample.kind", id=k, every=60),
        "insert": lambda k: JobSpec(k).validate(),  # type: ignore[arg-type]
    }
    for sample in KIND_SAMPLES:
        plugin.jobs.clear()
        plugin.schedules.clear()
        answers = {where: _accepts(check, sample) for where, check in checks.items()}
        assert set(answers.values()) == {job_options.is_valid_kind(sample)}, (sample, answers)


def test_every_duration_is_read_alike() -> None:
    """The file's ``every``, a plugin's ``every``/``timeout`` and a schedule's ``every`` read the same."""
    samples = ("90", "1h30m", "250ms", "2d", "1.5h", "30m1h", "1h1h", "500us", "-5s", "", 0.5, True)
    for sample in samples:
        expected = None
        with contextlib.suppress(ValueError):
            expected = durations.parse_duration(sample)
        file_every = None
        with contextlib.suppress(config_values.Invalid):
            file_every = config_values.duration(positive=True).check(sample)
        plugin_every = None
        with contextlib.suppress(ValueError):
            plugin_every = duration_seconds(sample)
        positive = expected if expected else None  # `every` must be > 0
        assert file_every == plugin_every == positive, (sample, file_every, plugin_every, positive)


def test_leadership_changes_are_worded_in_leader_events_only() -> None:
    """``LeadershipEvent.message``: the log line and the Sentry event use the same words."""
    words = ("leadership gained", "leadership lost", "leadership expired", "stepped down", "no longer leads")
    copies = _mentioning(words, outside=_owner(leader_events))
    assert not copies, f"use LeadershipEvent.message: {copies}"
    protocols = [
        _where(_owner(alerts), node)
        for node in ast.walk(trees()[_owner(alerts)])
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base) == "Protocol" for base in node.bases)
    ]
    assert not protocols, f"alerts takes the real types, not mirrors of them: {protocols}"


def test_alerts_has_one_never_raise_wrapper() -> None:
    """Every reporter goes through ``alerts._reporting``: one ``except Exception`` that calls ``_failed``."""
    handlers = [
        node
        for node in ast.walk(trees()[_owner(alerts)])
        if isinstance(node, ast.ExceptHandler) and "_failed(" in ast.unparse(node)
    ]
    assert len(handlers) == 1, [_where(_owner(alerts), h) for h in handlers]


def test_drift_differences_are_worded_in_drift_only() -> None:
    """``drift.describe``: check, status and the Sentry drift event word a difference alike."""
    words = ("is defined on", "is installed on", "plugin distribution")
    copies = _mentioning(words, outside=_owner(drift))
    assert not copies, f"use drift.describe: {copies}"
