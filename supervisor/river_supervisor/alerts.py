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
  configured.
- Fingerprints are explicit, so grouping is ours: one issue per (cluster, leadership event kind), per
  distinct drift, per orphaned schedule, per broken plugin, per crash-looping node.

What each event says (message, level, tags, fingerprint, context) is built in ``alert_events``
(pure); this module owns the SDK: set-up across sentry-sdk 2.x and 3.x, the never-raise reporters,
check-ins, flushing, and the redaction hooks.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, cast

import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.integrations.excepthook import ExcepthookIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.modules import ModulesIntegration

from . import __version__
from .alert_events import (
    Alert,
    crash_loop_alert,
    drift_alert,
    job_context,
    job_error_text,
    leadership_alert,
    orphaned_schedule_alert,
    plugin_load_error_alert,
)
from .config import SentryConfig
from .plugin_job import Job
from .redaction import ARGS_ALLOWED, scrub, scrub_event, secret_values
from .redaction import REDACTED as REDACTED  # re-exported: alerts.REDACTED

if TYPE_CHECKING:  # types only: leadership (and psycopg) are not loaded for them
    from sentry_sdk.types import Event, Hint

    from .leader_events import LeadershipEvent

log = logging.getLogger(__name__)

Role = Literal["supervisor", "worker", "cli"]
CheckInStatus = Literal["in_progress", "ok", "error"]

DEFAULT_FLUSH_TIMEOUT = 2.0
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


class _State:
    """Per-process state; ``pid`` tells an initialised process from a forked copy of one."""

    pid: int | None = None
    send_job_args: bool = False
    secrets: tuple[str, ...] = ()


_state = _State()


# -- set-up ------------------------------------------------------------------------------------------


def init(
    sentry_cfg: SentryConfig | None,
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
    if sentry_cfg is None or not sentry_cfg.dsn:
        return False
    dsn = sentry_cfg.dsn
    try:
        _close_own_client(0.5)
        _state.send_job_args = sentry_cfg.send_job_args
        _state.secrets = secret_values([dsn, *secrets])
        sentry_sdk.init(
            dsn=dsn,
            environment=sentry_cfg.environment,
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
# Each reporter below is a no-op returning None unless this process reports, and never raises: a
# failure to build or queue an event is logged once per reporter (``_reporting``).

_P = ParamSpec("_P")


def _reporting(report: Callable[_P, str | None]) -> Callable[_P, str | None]:
    """Make ``report`` a no-op without a client, and log (once) instead of raising when it fails."""

    @functools.wraps(report)
    def reporter(*args: _P.args, **kwargs: _P.kwargs) -> str | None:
        if not enabled():
            return None
        try:
            return report(*args, **kwargs)
        except Exception:
            _failed(report.__name__)
            return None

    return reporter


@_reporting
def leadership_event(ev: LeadershipEvent) -> str | None:
    """Report a leadership change; INFO for gained/resigned, WARNING for lost/expired/superseded.

    One Sentry issue per (cluster, kind): every "gained" in a cluster groups together, and
    "lost"/"expired"/"superseded" are separate issues an alert rule can watch. The message is the
    event's own (``LeadershipEvent.message``), the same words as its log line.
    """
    return _capture(leadership_alert(ev))


@_reporting
def drift_event(cluster: str, digest: str, differences: list[dict[str, Any]], nodes: list[str]) -> str | None:
    """Report configuration drift between nodes: one issue per distinct drift (its digest)."""
    return _capture(drift_alert(cluster, digest, differences, nodes))


@_reporting
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
    return _capture(
        orphaned_schedule_alert(
            cluster, schedule_id, leader_node=leader_node, kind=kind, last_run_at=last_run_at, detail=detail
        )
    )


@_reporting
def plugin_load_error_event(name: str, distribution: str | None, error: BaseException | str) -> str | None:
    """A plugin that failed to load (the others still run): one issue per plugin name."""
    return _capture(plugin_load_error_alert(name, distribution, error))


@_reporting
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
    alert = crash_loop_alert(
        cluster, node, worker, message, crashes=crashes, window=window, last_exit=last_exit, detail=detail
    )
    return _capture(alert)


@_reporting
def job_error(job: Job, exc: BaseException | str, *, send_args: bool | None = None) -> str | None:
    """Report a failed job: the handler's exception (grouped by stack trace) or an error text.

    Tagged with ``job_kind`` and ``queue``; id, attempt and max_attempts go in the ``job`` context.
    Args go along only when ``send_args`` (default: the ``[sentry] send_job_args`` setting).
    """
    include_args = _state.send_job_args if send_args is None else send_args
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("job_kind", job.kind)
        scope.set_tag("queue", job.queue)
        scope.set_context("job", job_context(job, include_args=include_args))
        if include_args:
            scope.set_extra(ARGS_ALLOWED, True)
        if isinstance(exc, BaseException):
            return sentry_sdk.capture_exception(exc)
        message, scope.fingerprint = job_error_text(job, exc)
        return sentry_sdk.capture_message(message, level="error")


# -- crons -------------------------------------------------------------------------------------------


@_reporting
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
    return capture_checkin(
        monitor_slug=monitor_slug,
        check_in_id=check_in_id,
        status=status,
        duration=duration,
        monitor_config=dict(monitor_config) if monitor_config else None,  # type: ignore[arg-type]
    )


# -- plumbing ----------------------------------------------------------------------------------------


def _capture(alert: Alert) -> str | None:
    event: dict[str, Any] = {"message": alert.message, "level": alert.level, "logger": alert.logger}
    if isinstance(alert.timestamp, datetime):
        event["timestamp"] = alert.timestamp
    return sentry_sdk.capture_event(
        cast("Event", event), tags=alert.tags, fingerprint=alert.fingerprint, contexts=alert.contexts
    )


_failed_once: set[str] = set()


def _failed(what: str) -> None:
    if what not in _failed_once:
        _failed_once.add(what)
        log.warning("could not report %s to Sentry", what, exc_info=True, extra=_extra(what))
    return None


def _extra(action: str) -> dict[str, str]:
    return {"event": f"alerts.{action}"}


# -- redaction ---------------------------------------------------------------------------------------
# The rules are in ``redaction`` (pure); this process's known secrets are in ``_state``.


def _before_send(event: Event, hint: Hint) -> Event | None:
    try:
        return cast("Event", scrub_event(cast(dict[str, Any], event), _state.secrets))
    except Exception:
        # Fail closed: an event we could not redact is not sent.
        log.debug("redaction failed; event dropped", exc_info=True, extra=_extra("redact"))
        return None


def _before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return scrub(crumb, _state.secrets)  # type: ignore[no-any-return]
    except Exception:
        return None
