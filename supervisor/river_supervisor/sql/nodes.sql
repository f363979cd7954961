-- The node registry (river_supervisor_node): one row per running supervisor process, keyed by
-- (cluster, node_id) where node_id is "node:pid:boot_id", so two processes started with the same
-- node name are never taken for one.

-- name: node_register
-- A process announces itself at boot (or again after a reconnect): identity, the backend of the
-- connection it registers on, the fingerprint and manifest of its periodic configuration and
-- plugins, the queues it serves ({"queue": concurrency}) and the queues and job kinds it works
-- (serves). Upsert: registering twice only refreshes the row.
INSERT INTO river_supervisor_node
    (cluster, node_id, node, pid, boot_id, backend_pid, started_at, last_seen, stopped_at,
     fingerprint, manifest, queues, serves)
VALUES (%(cluster)s, %(node_id)s, %(node)s, %(pid)s, %(boot_id)s, pg_backend_pid(), now(), now(), NULL,
        %(fingerprint)s, %(manifest)s, %(queues)s, %(serves)s)
ON CONFLICT (cluster, node_id) DO UPDATE
   SET backend_pid = excluded.backend_pid,
       last_seen = excluded.last_seen,
       stopped_at = NULL,
       fingerprint = excluded.fingerprint,
       manifest = excluded.manifest,
       queues = excluded.queues,
       serves = excluded.serves
RETURNING node_id;

-- name: node_heartbeat
-- Cheap liveness: one row; with the worker processes ready now and expected, and the slots whose
-- breaker is open (NULL keeps the last). No row: we were never registered (or were deleted).
UPDATE river_supervisor_node
   SET last_seen = now(),
       workers = coalesce(%(workers)s, workers),
       workers_expected = coalesce(%(workers_expected)s, workers_expected),
       workers_down = coalesce(%(workers_down)s, workers_down)
 WHERE cluster = %(cluster)s
   AND node_id = %(node_id)s
RETURNING node_id;

-- name: node_mark_stopped
-- A clean shutdown: the row stays for history and status, marked stopped.
UPDATE river_supervisor_node
   SET stopped_at = now(),
       last_seen = now()
 WHERE cluster = %(cluster)s
   AND node_id = %(node_id)s
RETURNING node_id;

-- name: node_list_live
-- Running nodes: not stopped and heard from within stale_after seconds (database clock).
SELECT cluster, node_id, node, pid, boot_id, backend_pid, started_at, last_seen, stopped_at,
       fingerprint, manifest, drift, serves, workers, workers_expected, workers_down
  FROM river_supervisor_node
 WHERE cluster = %(cluster)s
   AND stopped_at IS NULL
   AND last_seen > now() - make_interval(secs => %(stale_after)s)
 ORDER BY node, node_id;

-- name: node_set_drift_many
-- Leader only, inside a fenced transaction: mark exactly the given nodes as drifted and clear
-- the mark on every other node of the cluster. Returns the rows whose mark changed.
UPDATE river_supervisor_node
   SET drift = (node_id = ANY(%(node_ids)s::text[]))
 WHERE cluster = %(cluster)s
   AND drift IS DISTINCT FROM (node_id = ANY(%(node_ids)s::text[]))
RETURNING node_id, drift;

-- name: node_list_serving
-- Running nodes of every cluster with the queues they serve (for `queues list`): not stopped and
-- heard from within stale_after seconds (database clock).
SELECT cluster, node_id, node, queues
  FROM river_supervisor_node
 WHERE stopped_at IS NULL
   AND last_seen > now() - make_interval(secs => %(stale_after)s)
 ORDER BY node, cluster, node_id;
