"""Read-only data for ``status`` and ``check``: plain JSON-ready dicts, rendered by the commands.

``status`` (needs the database)
    The lease holder (``leader``: null while no live lease), the live nodes with their
    fingerprints and whether each differs from the leader's (``drift``), the schedules with
    durable state in the cluster merged with this host's (``periodic``), the schedules the
    cluster ran before that the leader no longer defines (``orphans``) and the job counts by
    queue and state (``queues``), and the queues paused in ``river_queue`` (``paused_queues``).
    Drift is computed here from the nodes' published manifests
    against the leader's (else the most common one), as the leader's drift watch does, so
    ``status`` is right even between two of its passes.

``check`` (offline first, then against the live cluster)
    Configuration problems are found without a database: plugins that failed to load, plugins
    claiming one job kind or periodic id, schedules that do not parse, schedules whose job kind
    no plugin here handles. Job kinds and schedules on a queue this host does not serve
    (``[queues]``) are *warnings*: a host serving only some queues is a legitimate deployment,
    so this alone does not fail ``check`` (``--strict`` makes warnings fail). Then, with a
    database, this host's manifest is compared with every live node's (this host is the
    reference): each schedule added, missing or changed (with the fields) and each plugin
    distribution missing, added or at another version is a ``drift`` problem, and every
    schedule with durable state this host does not define is an ``orphaned_schedule`` problem.
    A database that is configured but cannot be reached (or is not migrated) is a problem too,
    not a usage error: check ran and could not confirm the cluster agrees, which must fail a
    deploy step; ``--offline`` skips the database on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from . import benchjobs, db, drift, drift_reads, nodes, periodic, queue, queues, schema, serving
from .config import Config
from .discovery import PluginSet
from .errors import DatabaseUnavailable, SchemaMissing, UsageError, first_line
from .manifest import LocalManifest

STALE_AFTER = nodes.STALE_AFTER  # a node not heard from for this long is not live (seconds)
THIS_HOST = "this host"


HISTORY_LIMIT = 10  # leadership changes shown by status, newest first


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with offset, in UTC; None stays None."""
    return value.astimezone(UTC).isoformat() if value is not None else None


def open_database(cfg: Config, application_name: str) -> psycopg.Connection[dict[str, Any]]:
    """A read connection to a migrated database, or ``UsageError`` / ``DatabaseUnavailable`` /
    ``SchemaMissing`` (all exit 2 when raised to the CLI)."""
    if not cfg.database_url:
        raise UsageError("no database configured: set database_url, DATABASE_URL or --database-url")
    conn = db.connect(cfg.database_url, application_name=application_name)
    try:
        current = schema.is_current(conn)
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseUnavailable(f"database {db.redact_url(cfg.database_url)}: {exc}") from exc
    if not current:
        conn.close()
        raise SchemaMissing(
            f"database {db.redact_url(cfg.database_url)}: schema missing or out of date:"
            " run river-supervisor migrate"
        )
    return conn


# --- status -----------------------------------------------------------------------------------


def cluster_status(
    conn: psycopg.Connection[Any],
    cfg: Config,
    local: LocalManifest,
    now: datetime,
    *,
    stale_after: float = STALE_AFTER,
) -> dict[str, Any]:
    """``status --json``: DESIGN.md's keys plus ``drift``, ``orphans`` and ``this_host``."""
    cluster = cfg.cluster
    lease = nodes.leader(conn, cluster)
    live = nodes.live_nodes(conn, cluster, stale_after)
    labels = nodes.labels(live)
    leader_id = lease["leader_id"] if lease and lease["live"] else None
    reference = labels.get(leader_id) if leader_id else None
    found = drift.compare({labels[row.node_id]: dict(row.manifest) for row in live}, reference=reference)
    drifting = set(found.drifting_nodes)
    node_list = [
        {
            "node": row.node,
            "node_id": row.node_id,
            "pid": row.pid,
            "started_at": iso(row.started_at),
            "last_seen": iso(row.last_seen),
            "fingerprint": row.fingerprint,
            "drift": labels[row.node_id] in drifting,
            "leader": row.node_id == leader_id,
            "same_as_this_host": row.fingerprint == local.digest,
            "workers": _workers(row),
        }
        for row in live
    ]
    # Orphans are judged against what the leader runs (its published manifest), else this host.
    leader_row = next((row for row in live if row.node_id == leader_id), None)
    if leader_row is not None:
        defined = set(leader_row.manifest.get("schedules", {}))
        disabled: frozenset[str] = frozenset()
        judged_by = labels[leader_row.node_id]
    else:
        defined = {schedule.id for schedule in local.schedules.schedules}
        disabled = local.schedules.disabled
        judged_by = THIS_HOST
    periodic_list = _periodic(conn, cluster, local, now, defined | disabled)
    return {
        "cluster": cluster,
        "generated_at": iso(now),
        "leader": _leader(lease) if lease and leader_id else None,
        "last_leader": _leader(lease) if lease and not leader_id else None,
        "leadership_history": [
            {
                "at": iso(event["at"]),
                "event": event["event"],
                "node": event["node"],
                "term": event["term"],
                "other_leader_id": event["other_leader_id"],
            }
            for event in nodes.leader_history(conn, cluster, limit=HISTORY_LIMIT)
        ],
        "nodes": node_list,
        "drift": {
            "drift": bool(found),
            "summary": found.summary(),
            "digest": found.digest or None,
            "reference": found.reference,
            "differences": list(found.differences),
        },
        "periodic": periodic_list,
        "orphans": {
            "judged_by": judged_by,
            "schedules": [entry for entry in periodic_list if entry["orphaned"]],
        },
        "queues": _queues(conn, cfg),
        "paused_queues": [
            {"name": name, "paused_at": iso(paused_at)} for name, paused_at in queues.paused(conn).items()
        ],
        # jobs waiting that no live host will fetch: their queue or their kind is served by none
        "unserved": serving.unserved(conn, cluster, stale_after=stale_after).to_json(),
        "this_host": {
            "node": cfg.node,
            "fingerprint": local.digest,
            "problems": list(local.schedules.problems),
        },
    }


def _workers(row: nodes.NodeRow) -> dict[str, Any]:
    """Worker processes ready and expected, and the slots that cannot start (breaker open)."""
    down = [{"slot": int(slot), "reason": why} for slot, why in sorted((row.workers_down or {}).items())]
    return {"ready": row.workers, "expected": row.workers_expected, "down": down}


def _leader(lease: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "node": lease["node"],
        "term": lease["term"],
        "since": iso(lease["since"]),
        "leader_id": lease["leader_id"],
        "renewed_at": iso(lease["renewed_at"]),
        "expires_at": iso(lease["expires_at"]),
    }


def _periodic(
    conn: psycopg.Connection[Any], cluster: str, local: LocalManifest, now: datetime, defined: set[str]
) -> list[dict[str, Any]]:
    """Durable state merged with this host's schedules, by id. ``next_run_at``: for a schedule
    defined here, the stored one if still ahead, else computed from this host's definition; for
    one defined only elsewhere, the stored one; for an orphan, null (no one will run it)."""
    stored = {row["id"]: row for row in periodic.stored_state(conn, cluster)}
    mine = local.schedules.by_id()
    computed = {
        entry["id"]: entry for entry in periodic.schedule_status(conn, cluster, list(mine.values()), now)
    }
    out = []
    for schedule_id in sorted(set(stored) | set(mine)):
        row, here = stored.get(schedule_id), mine.get(schedule_id)
        orphaned = row is not None and schedule_id not in defined
        if here is not None:
            next_run_at = computed[schedule_id]["next_run_at"]
        elif row is not None and not orphaned:
            next_run_at = iso(row["next_run_at"])
        else:
            next_run_at = None  # no one runs it
        if here is not None:
            kind, text = here.kind, here.schedule_text
        else:
            kind, text = stored[schedule_id]["kind"], stored[schedule_id]["schedule"]
        out.append(
            {
                "id": schedule_id,
                "kind": kind,
                "schedule": text,
                "last_slot": iso(row["last_slot"]) if row else None,
                "next_run_at": next_run_at,
                "defined_by": row["defined_by"] if row else None,
                "defined_here": here is not None,
                "orphaned": orphaned,
                "last_job_id": row["last_job_id"] if row else None,
            }
        )
    return out


def _queues(conn: psycopg.Connection[Any], cfg: Config) -> dict[str, dict[str, int]]:
    counts = queue.queue_counts(conn)
    for name in cfg.queues:
        counts.setdefault(name, {})
    return dict(sorted(counts.items()))


def queue_list(
    conn: psycopg.Connection[Any], now: datetime, *, stale_after: float = STALE_AFTER
) -> list[dict[str, Any]]:
    """``queues list --json``: every queue River knows or that holds jobs, with its state (paused or
    active), jobs by state, the oldest available job's age in seconds and the live hosts serving it."""
    serving: dict[str, list[dict[str, Any]]] = {}
    for node in nodes.serving(conn, stale_after):
        for name, concurrency in sorted(node["queues"].items()):
            host = {"node": node["node"], "node_id": node["node_id"], "cluster": node["cluster"]}
            serving.setdefault(name, []).append({**host, "concurrency": concurrency})
    rows = {row["name"]: row for row in queues.list_queues(conn)}
    out = []
    for name in sorted(set(rows) | set(serving)):
        row = rows.get(name, {})
        out.append(
            {
                "name": name,
                "state": "paused" if row.get("paused_at") else "active",
                "paused_at": iso(row.get("paused_at")),
                "created_at": iso(row.get("created_at")),
                "updated_at": iso(row.get("updated_at")),
                "metadata": row.get("metadata"),
                "jobs": {state: int(n) for state, n in sorted((row.get("jobs") or {}).items())},
                "oldest_available_age": row.get("oldest_available_age"),
                "hosts": serving.get(name, []),
            }
        )
    return out


# --- check ------------------------------------------------------------------------------------


def check_offline(
    cfg: Config, plugin_set: PluginSet, local: LocalManifest
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(problems, warnings)`` found without a database."""
    problems: list[dict[str, Any]] = []
    for row in plugin_set.plugins:
        if row.error is not None:
            problems.append(
                {
                    "kind": "plugin_load_error",
                    "plugin": row.name,
                    "distribution": row.distribution,
                    "message": f"plugin {row.name}"
                    + (f" ({row.distribution})" if row.distribution else "")
                    + f": {row.error}",
                }
            )
    problems.extend({"kind": "plugin_conflict", "message": str(c)} for c in plugin_set.conflicts)
    problems.extend(dict(problem) for problem in local.schedules.problems)
    return problems, _queue_warnings(cfg, plugin_set, local)


def _queue_warnings(cfg: Config, plugin_set: PluginSet, local: LocalManifest) -> list[dict[str, Any]]:
    """One warning per queue that jobs or schedules here use and ``[queues]`` does not serve."""
    kinds: dict[str, list[str]] = {}
    schedules: dict[str, list[str]] = {}
    for kind, registered in sorted(plugin_set.handlers.items()):
        if registered.options.queue == benchjobs.QUEUE:
            continue  # the package's own bench kind: only `bench`'s scratch supervisor serves it
        kinds.setdefault(registered.options.queue, []).append(kind)
    for schedule in local.schedules.schedules:
        if schedule.kind in plugin_set.handlers:  # an unknown kind is a problem already
            schedules.setdefault(schedule.queue, []).append(schedule.id)
    warnings = []
    for name in sorted((set(kinds) | set(schedules)) - set(cfg.queues)):
        what = [f"job kinds {', '.join(kinds[name])}"] if name in kinds else []
        what += [f"periodic {', '.join(schedules[name])}"] if name in schedules else []
        warnings.append(
            {
                "kind": "queue_not_served",
                "queue": name,
                "job_kinds": kinds.get(name, []),
                "schedules": schedules.get(name, []),
                "message": f"queue {name!r} has no [queues.{name}] entry, so {' and '.join(what)}"
                " never run on this host",
            }
        )
    return warnings


def check_cluster(
    conn: psycopg.Connection[Any],
    cfg: Config,
    local: LocalManifest,
    *,
    stale_after: float = STALE_AFTER,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(problems, checked)`` from comparing this host with the live nodes of its cluster."""
    live = nodes.live_nodes(conn, cfg.cluster, stale_after)
    labels = nodes.labels(live)
    manifests: dict[str, Mapping[str, Any]] = {labels[row.node_id]: dict(row.manifest) for row in live}
    me = f"{cfg.node} ({THIS_HOST})"
    found = drift.compare({**manifests, me: local.manifest}, reference=me)
    problems = [_drift_problem(d, manifests) for d in found.differences]
    for orphan in drift_reads.orphans(conn, cfg.cluster, local.schedules.schedules, local.schedules.disabled):
        by = f", last defined by node {orphan.defined_by}" if orphan.defined_by else ""
        problems.append(
            {
                "kind": "orphaned_schedule",
                "id": orphan.id,
                "job_kind": orphan.kind,
                "defined_by": orphan.defined_by,
                "last_slot": iso(orphan.last_slot),
                "message": f"periodic {orphan.id} ({orphan.kind}) has run in cluster {cfg.cluster}{by},"
                " but this host does not define it: it would stop if this host led",
            }
        )
    checked = {
        "cluster": cfg.cluster,
        "nodes": sorted(manifests),
        "drift_digest": found.digest or None,
    }
    return problems, checked


def _drift_problem(
    difference: Mapping[str, Any], manifests: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    problem: dict[str, Any] = {"kind": "drift", **difference}
    kind = None
    if difference["what"] == "schedule_added":
        schedules = manifests.get(difference["node"], {}).get("schedules", {})
        kind = problem["job_kind"] = schedules.get(difference["id"], {}).get("kind")
    problem["message"] = drift.describe(difference, THIS_HOST, kind=kind)
    return problem


def check_report(
    cfg: Config,
    plugin_set: PluginSet,
    local: LocalManifest,
    *,
    connect: Callable[[], psycopg.Connection[Any]] | None,
    skipped: str | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """``check --json``: ``{"ok", "problems", "warnings", "checked"}``.

    ``connect`` opens the database (``open_database``); None skips the cluster comparison, and
    ``skipped`` says why ("--offline", "no database configured").
    """
    problems, warnings = check_offline(cfg, plugin_set, local)
    checked: dict[str, Any] = {
        "config": cfg.path,
        "node": cfg.node,
        "plugins": sorted(row.name for row in plugin_set.plugins if row.plugin is not None),
        "job_kinds": len(plugin_set.handlers),
        "schedules": [schedule.id for schedule in local.schedules.schedules],
        "disabled_schedules": sorted(local.schedules.disabled),
        "queues": sorted(cfg.queues),
        "fingerprint": local.digest,
        "cluster": None,
        "cluster_skipped": skipped,
    }
    if connect is not None:
        try:
            with connect() as conn:
                found, checked["cluster"] = check_cluster(conn, cfg, local)
                unserved = serving.unserved(conn, cfg.cluster)
            problems.extend(found)
            # a warning, not a problem: the cluster's state, not this host's configuration
            waiting = (*unserved.queues, *unserved.kinds)
            warnings.extend({"kind": "jobs_unserved", **entry} for entry in waiting)
        except SchemaMissing as exc:
            problems.append({"kind": "schema_missing", "message": str(exc)})
        except db.TRANSIENT as exc:
            problems.append({"kind": "database_unreachable", "message": first_line(exc)})
    failing = problems + (warnings if strict else [])
    return {"ok": not failing, "problems": problems, "warnings": warnings, "checked": checked}
