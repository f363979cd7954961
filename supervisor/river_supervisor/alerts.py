"""Sentry reporting: the only module that imports ``sentry_sdk``.

Model
- Each process (the supervisor parent, every worker, a CLI command) calls ``init()`` once after it
  starts; nothing crosses a fork. With no DSN everything here is a no-op.
- Reporting never raises and never waits on the network: ``capture_*`` only queues an envelope for
  the SDK's transport thread. Only ``flush()``/``close()`` wait, and never longer than their timeout.
  A worker must ``flush()`` (or ``close()``) before it exits: multiprocess children end with
  ``os._exit`` and skip the SDK's atexit flush.
- Events are deliberate: the logging integration keeps log records as breadcrumbs but turns none into
  an event (``event_level=None``), and no other integration is enabled behind our back.
- Every event passes through ``redaction`` before it leaves: URL passwords, ``password=`` style
  secrets, known secret values and sensitive keys become ``***``; job args are dropped unless
  configured. ``redact`` applies the same rules, with this process's secrets, to one text.
- Fingerprints are explicit, so grouping is ours: one issue per (cluster, leadership event kind), per
  distinct drift, per orphaned schedule, per broken plugin, per crash-looping node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.integrations.excepthook import ExcepthookIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.modules import ModulesIntegration

from . import __version__
from .redaction import ARGS_ALLOWED, redact_text, scrub, scrub_event, secret_values
from .redaction import REDACTED as REDACTED  # re-exported: alerts.REDACTED

log = logging.getLogger(__name__)

Role = Literal["supervisor", "worker", "cli"]
CheckInStatus = Literal["in_progress", "ok", "error"]

DEFAULT_FLUSH_TIMEOUT = 2.0
_FINGERPRINT_ROOT = "river-supervisor"
# sentry-sdk 3 renamed two things we rely on, and refuses or misreads the 2.x spelling:
# - frames' local variables are never sent (a handler's locals hold job args): 2.x
#   ``include_local_variables``, 3.x ``data_collection["stack_frame_variables"]``;
# - log records become breadcrumbs only, never Sentry Logs (a log line may name a URL or a job):
#   2.x ``LoggingIntegration(level=...)`` is the breadcrumb level, in 3.x ``level`` turns on Sentry
#   Logs and ``breadcrumb_level`` is the breadcrumb level.
_SDK_MAJOR = int(sentry_sdk.VERSION.split(".")[0])
if _SDK_MAJOR < 3:
    _NO_FRAME_LOCALS: dict[str, Any] = {"include_local_variables": False}
    _LOGS_AS_BREADCRUMBS: dict[str, Any] = {"level": logging.INFO, "event_level": None}
else:
    _NO_FRAME_LOCALS = {"data_collection": {"stack_frame_variables": False, "user_info": False}}
    _LOGS_AS_BREADCRUMBS = {"level": None, "event_level": None, "breadcrumb_level": logging.INFO}
_WARNING_KINDS = frozenset({"lost", "expired", "superseded"})
_LEADERSHIP_KINDS = frozenset({"gained", "resigned"}) | _WARNING_KINDS


class SentrySettings(Protocol):
    """The slice of configuration ``init`` reads (``config.SentryConfig`` has it)."""

    @property
    def dsn(self) -> str | None: ...

    @property
    def environment(self) -> str | None: ...


class LeadershipEventLike(Protocol):
    """What ``leadership.LeadershipEvent`` carries; any object with these attributes will do."""

    @property
    def kind(self) -> str: ...  # gained | resigned | lost | expired | superseded

    @property
    def cluster(self) -> str: ...

    @property
    def node(self) -> str: ...  # the node reporting the change

    @property
    def leader_id(self) -> str | None: ...  # node:pid:boot_id of the holder the event is about

    @property
    def term(self) -> int: ...

    @property
    def other_leader_id(self) -> str | None: ...  # previous (gained) or next (lost, ...) holder

    @property
    def at(self) -> datetime: ...

    @property
    def detail(self) -> Mapping[str, Any]: ...


class JobLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def queue(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def args(self) -> Mapping[str, Any]: ...


class _State:
    """Per-process state; ``pid`` tells an initialised process from a forked copy of one."""

    pid: int | None = None
    send_job_args: bool = False
    secrets: tuple[str, ...] = ()


_state = _State()


# -- set-up ------------------------------------------------------------------------------------------


def init(
    sentry_cfg: SentrySettings | None,
    *,
    role: Role,
    cluster: str,
    node: str,
    release: str | None = None,
    secrets: Iterable[str | None] = (),
) -> bool:
    """Start this process's Sentry client; return whether reporting is on.

    ``secrets`` are values never to send: plain strings, or URLs whose password is taken (pass the
    database URL). No DSN: a no-op returning False. Never raises.
    """
    dsn = getattr(sentry_cfg, "dsn", None) if sentry_cfg is not None else None
    if not dsn:
        return False
    try:
        _close_own_client(0.5)
        _state.send_job_args = bool(getattr(sentry_cfg, "send_job_args", False))
        _state.secrets = secret_values([dsn, *secrets])
        sentry_sdk.init(
            dsn=dsn,
            environment=getattr(sentry_cfg, "environment", None),
            release=release or f"river-supervisor@{__version__}",
            server_name=node,
            # Only what we chose: no auto-enabled integrations, no stdlib/argv/threading patches
            # (argv may carry a database URL). Logs become breadcrumbs, never events.
            default_integrations=False,
            integrations=[
                LoggingIntegration(**_LOGS_AS_BREADCRUMBS),
                DedupeIntegration(),
                ExcepthookIntegration(),
                ModulesIntegration(),
                AtexitIntegration(callback=_quiet_atexit),
            ],
            auto_session_tracking=False,
            **_NO_FRAME_LOCALS,
            before_send=_before_send,
            before_breadcrumb=_before_breadcrumb,
            shutdown_timeout=DEFAULT_FLUSH_TIMEOUT,
        )
        scope = sentry_sdk.get_global_scope()  # every thread's events, not just this one's
        scope.set_tag("cluster", cluster)
        scope.set_tag("node", node)
        scope.set_tag("role", role)
        scope.set_context("process", {"role": role, "pid": os.getpid()})
        _state.pid = os.getpid()
        return True
    except Exception:
        log.warning("sentry initialisation failed; reporting is off", exc_info=True, extra=_extra("init"))
        _state.pid = None
        return False


def enabled() -> bool:
    """Whether this process initialised a Sentry client (a forked copy of one does not count)."""
    return _state.pid == os.getpid()


def flush(timeout: float = DEFAULT_FLUSH_TIMEOUT) -> None:
    """Wait up to ``timeout`` seconds for queued events to be sent."""
    if not enabled():
        return
    try:
        sentry_sdk.flush(timeout=timeout)
    except Exception:
        log.debug("sentry flush failed", exc_info=True, extra=_extra("flush"))


def close(timeout: float = DEFAULT_FLUSH_TIMEOUT) -> None:
    """Flush (up to ``timeout``) and stop this process's client; reporting is off afterwards."""
    _close_own_client(timeout)


def _close_own_client(timeout: float) -> None:
    # A client inherited across fork belongs to the parent: flushing or closing it here would
    # touch the parent's queue and socket. Only the client this process started is ours to close.
    if not enabled():
        _state.pid = None
        return
    _state.pid = None
    try:
        sentry_sdk.get_client().close(timeout=timeout)
    except Exception:
        log.debug("sentry close failed", exc_info=True, extra=_extra("close"))


def _quiet_atexit(pending: int, timeout: float) -> None:
    # The SDK's default prints to stderr; only cli prints.
    log.info("sending %d pending Sentry event(s) before exit (up to %ss)", pending, timeout)


# -- events ------------------------------------------------------------------------------------------


def leadership_event(ev: LeadershipEventLike) -> str | None:
    """Report a leadership change; INFO for gained/resigned, WARNING for lost/expired/superseded.

    One Sentry issue per (cluster, kind): every "gained" in a cluster groups together, and
    "lost"/"expired"/"superseded" are separate issues an alert rule can watch.
    """
    try:
        kind = str(ev.kind)
        level = "warning" if kind in _WARNING_KINDS else "info"
        if kind not in _LEADERSHIP_KINDS:
            level = "warning"
        other = ev.other_leader_id
        context = {
            "kind": kind,
            "cluster": ev.cluster,
            "node": ev.node,
            "term": ev.term,
            "leader_id": ev.leader_id,
            "other_leader_id": other,
            "at": _iso(ev.at),
            "detail": dict(ev.detail or {}),
        }
        detail = dict(ev.detail or {})
        message = (
            _peer_lost_message(ev.cluster, ev.node, ev.term, detail)
            if "reported_by" in detail
            else _leadership_message(kind, ev.cluster, ev.node, ev.term, ev.leader_id, other)
        )
        return _capture(
            message,
            level=level,
            logger="river_supervisor.leadership",
            tags={"cluster": ev.cluster, "node": ev.node, "term": str(ev.term), "leadership_event": kind},
            fingerprint=[_FINGERPRINT_ROOT, "leadership", ev.cluster, kind],
            contexts={"leadership": context},
            timestamp=ev.at,
        )
    except Exception:
        return _failed("leadership_event")


_LOSS_REASONS = {
    "session_gone": "its lease session vanished (a crash, a kill, a lost host)",
    "lease_expired": "its lease expired without renewal (paused, cut off, or its database was away)",
}


def _peer_lost_message(cluster: str, node: str, term: int, detail: dict[str, Any]) -> str:
    """The loss of a holder that did not resign, as its successor reports it."""
    why = _LOSS_REASONS.get(str(detail.get("reason")), str(detail.get("reason")))
    gap = detail.get("leaderless_seconds")
    took = f"node {detail.get('reported_by')} took over (term {detail.get('next_term')})"
    leaderless = f" after {gap:.1f} s without a leader" if isinstance(gap, int | float) else ""
    return f"leadership lost: node {node} (term {term}) in cluster {cluster}: {why}; {took}{leaderless}"


def _leadership_message(
    kind: str, cluster: str, node: str, term: int, leader_id: str | None, other: str | None
) -> str:
    if kind == "gained":
        text = f"leadership gained: node {node} leads cluster {cluster} (term {term})"
        return text + (f", previous holder {other}" if other else "")
    if kind == "resigned":
        text = f"leadership resigned: node {node} stepped down in cluster {cluster} (term {term})"
    elif kind == "lost":
        text = f"leadership lost: node {node} no longer leads cluster {cluster} (term {term})"
    elif kind == "expired":
        holder = leader_id or node
        text = f"leadership expired: the lease of {holder} in cluster {cluster} ran out (term {term})"
    elif kind == "superseded":
        text = f"leadership superseded: node {node} was replaced in cluster {cluster} (term {term})"
    else:
        text = f"leadership {kind}: node {node} in cluster {cluster} (term {term})"
    return text + (f", next holder {other}" if other else "")


def drift_event(cluster: str, digest: str, differences: list[dict[str, Any]], nodes: list[str]) -> str | None:
    """Report configuration drift between nodes: one issue per distinct drift (its digest)."""
    try:
        short = digest[:12]
        summary = [_describe_difference(d) for d in differences[:20]]
        return _capture(
            f"configuration drift in cluster {cluster}: {len(differences)} difference(s) "
            f"across {len(nodes)} node(s) ({short})",
            level="warning",
            logger="river_supervisor.periodic",
            tags={"cluster": cluster, "drift": short},
            fingerprint=[_FINGERPRINT_ROOT, "drift", cluster, digest],
            contexts={
                "drift": {
                    "digest": digest,
                    "nodes": sorted(nodes),
                    "count": len(differences),
                    "summary": "\n".join(summary),
                    "differences": differences,
                }
            },
        )
    except Exception:
        return _failed("drift_event")


def _describe_difference(diff: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in diff.items())


def orphaned_schedule_event(
    cluster: str,
    schedule_id: str,
    *,
    leader_node: str,
    kind: str | None = None,
    last_run_at: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> str | None:
    """A schedule the cluster ran before that the current leader does not define."""
    try:
        return _capture(
            f"orphaned schedule {schedule_id} in cluster {cluster}: it has run before "
            f"but leader {leader_node} does not define it",
            level="warning",
            logger="river_supervisor.periodic",
            tags={"cluster": cluster, "schedule": schedule_id},
            fingerprint=[_FINGERPRINT_ROOT, "orphaned-schedule", cluster, schedule_id],
            contexts={
                "schedule": {
                    "id": schedule_id,
                    "kind": kind,
                    "leader_node": leader_node,
                    "last_run_at": _iso(last_run_at),
                    "detail": dict(detail or {}),
                }
            },
        )
    except Exception:
        return _failed("orphaned_schedule_event")


def plugin_load_error_event(name: str, distribution: str | None, error: BaseException | str) -> str | None:
    """A plugin that failed to load (the others still run): one issue per plugin name."""
    try:
        error_text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        context: dict[str, Any] = {"name": name, "distribution": distribution, "error": error_text}
        if isinstance(error, BaseException) and error.__traceback__ is not None:
            import traceback

            context["traceback"] = "".join(traceback.format_exception(error))
        return _capture(
            f"plugin {name} ({distribution or 'unknown distribution'}) failed to load: {error_text}",
            level="error",
            logger="river_supervisor.plugins",
            tags={"plugin": name},
            fingerprint=[_FINGERPRINT_ROOT, "plugin-load", name],
            contexts={"plugin": context},
        )
    except Exception:
        return _failed("plugin_load_error_event")


def crash_loop_event(
    cluster: str,
    node: str,
    worker: str | int | None = None,
    message: str | None = None,
    *,
    crashes: int | None = None,
    window: float | None = None,
    last_exit: str | int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> str | None:
    """Workers crash-looped and restarts stopped: ERROR, one issue per (cluster, node).

    ``message`` (the supervisor's own log line) is used as is; without it one is built from
    ``crashes``, ``window`` and ``last_exit``.
    """
    try:
        if message is None:
            who = f"worker {worker}" if worker is not None else "workers"
            counts = (
                f": {crashes} crashes in {window:g}s" if crashes is not None and window is not None else ""
            )
            exit_text = f" (last exit: {last_exit})" if last_exit is not None else ""
            message = f"{who} crash loop on node {node}{counts}, restarts stopped{exit_text}"
        return _capture(
            message,
            level="error",
            logger="river_supervisor.supervisor",
            tags={"cluster": cluster, "node": node},
            fingerprint=[_FINGERPRINT_ROOT, "crash-loop", cluster, node],
            contexts={
                "crash_loop": {
                    "worker": worker,
                    "crashes": crashes,
                    "window_seconds": window,
                    "last_exit": last_exit,
                    "detail": dict(detail or {}),
                }
            },
        )
    except Exception:
        return _failed("crash_loop_event")


def job_error(job: JobLike, exc: BaseException | str, *, send_args: bool | None = None) -> str | None:
    """Report a failed job: the handler's exception (grouped by stack trace) or an error text.

    Tagged with ``job_kind`` and ``queue``; id, attempt and max_attempts go in the ``job`` context.
    Args go along only when ``send_args`` (default: the ``[sentry] send_job_args`` setting).
    """
    try:
        if not enabled():
            return None
        include_args = _state.send_job_args if send_args is None else send_args
        kind = str(getattr(job, "kind", None))
        queue = str(getattr(job, "queue", None))
        context: dict[str, Any] = {
            "id": getattr(job, "id", None),
            "kind": kind,
            "queue": queue,
            "attempt": getattr(job, "attempt", None),
            "max_attempts": getattr(job, "max_attempts", None),
        }
        if include_args:
            context["args"] = dict(getattr(job, "args", None) or {})
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("job_kind", kind)
            scope.set_tag("queue", queue)
            scope.set_context("job", context)
            if include_args:
                scope.set_extra(ARGS_ALLOWED, True)
            if isinstance(exc, BaseException):
                return sentry_sdk.capture_exception(exc)
            scope.fingerprint = [_FINGERPRINT_ROOT, "job", kind, "{{ default }}"]
            return sentry_sdk.capture_message(f"job {kind} failed: {exc}", level="error")
    except Exception:
        return _failed("job_error")


def internal_error(
    exc: BaseException, *, component: str, detail: Mapping[str, Any] | None = None
) -> str | None:
    """A bug caught at a loop boundary (logged once at ERROR by the caller): send it deliberately."""
    try:
        if not enabled():
            return None
        return sentry_sdk.capture_exception(
            exc, tags={"component": component}, contexts={"component": {"name": component, **(detail or {})}}
        )
    except Exception:
        return _failed("internal_error")


# -- crons -------------------------------------------------------------------------------------------


def checkin(
    monitor_slug: str,
    status: CheckInStatus,
    monitor_config: Mapping[str, Any] | None = None,
    check_in_id: str | None = None,
    duration: float | None = None,
) -> str | None:
    """Send a Sentry Crons check-in; return its id (pass it back with the closing ok/error).

    ``monitor_config`` (schedule, timezone, checkin_margin and max_runtime in minutes, ...) upserts
    the monitor; send it with every check-in. ``duration`` is in seconds.
    """
    try:
        if not enabled():
            return None
        return capture_checkin(
            monitor_slug=monitor_slug,
            check_in_id=check_in_id,
            status=status,
            duration=duration,
            monitor_config=dict(monitor_config) if monitor_config else None,  # type: ignore[arg-type]
        )
    except Exception:
        return _failed("checkin")


# -- plumbing ----------------------------------------------------------------------------------------


def _capture(
    message: str,
    *,
    level: str,
    logger: str,
    tags: dict[str, str],
    fingerprint: list[str],
    contexts: dict[str, dict[str, Any]],
    timestamp: datetime | None = None,
) -> str | None:
    if not enabled():
        return None
    event: dict[str, Any] = {"message": message, "level": level, "logger": logger}
    if isinstance(timestamp, datetime):
        event["timestamp"] = timestamp
    return sentry_sdk.capture_event(event, tags=tags, fingerprint=fingerprint, contexts=contexts)  # type: ignore[arg-type]


_failed_once: set[str] = set()


def _failed(what: str) -> None:
    if what not in _failed_once:
        _failed_once.add(what)
        log.warning("could not report %s to Sentry", what, exc_info=True, extra=_extra(what))
    return None


def _extra(action: str) -> dict[str, str]:
    return {"event": f"alerts.{action}"}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if isinstance(at, datetime) else None


# -- redaction ---------------------------------------------------------------------------------------
# The rules are in ``redaction`` (pure); this process's known secrets are in ``_state``.


def redact(text: str) -> str:
    """``text`` with URL passwords, ``password=...`` style values and known secrets replaced."""
    return redact_text(text, _state.secrets)


def _before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return scrub_event(event, _state.secrets)
    except Exception:
        # Fail closed: an event we could not redact is not sent.
        log.debug("redaction failed; event dropped", exc_info=True, extra=_extra("redact"))
        return None


def _before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return scrub(crumb, _state.secrets)  # type: ignore[no-any-return]
    except Exception:
        return None
