-- What the supervisor parent asks of river_job (and pg_stat_activity) about its own workers.

-- name: job_running_ids_by_worker
-- Jobs a worker process fetched (it is the last entry of attempted_by) and that are still
-- running: after the worker died, the ones it took but had not yet reported to the parent.
-- Uses river_job_prioritized_fetching_index's leading state column; running jobs are few.
SELECT id
  FROM river_job
 WHERE state = 'running'
   AND attempted_by[array_length(attempted_by, 1)] = %(worker_id)s
 ORDER BY id;

-- name: session_terminate_by_application
-- End the database sessions of a dead worker (its application_name is unique to that process), so
-- that a fetch it sent just before dying either commits or rolls back before the parent looks for
-- the jobs it held. Needs the same role as the worker, or membership in pg_signal_backend.
SELECT count(pg_terminate_backend(pid)) AS ended
  FROM pg_stat_activity
 WHERE application_name = %(application_name)s
   AND pid <> pg_backend_pid();

-- name: session_count_by_application
-- How many sessions of that worker are still there: the parent waits for none.
SELECT count(*) AS sessions
  FROM pg_stat_activity
 WHERE application_name = %(application_name)s
   AND pid <> pg_backend_pid();

-- name: job_select_running_on_dead_nodes
-- Leader only: running jobs whose latest attempt belongs to a worker of a node of this cluster
-- that is gone: stopped, or (when judge_silence) not heard from for dead_after seconds (database
-- clock); the caller judges silence only once the database has taken its own writes for that long,
-- or a database outage would pass for the death of every host (see DeadHostRescuer). Worker ids
-- are "<node_id>/w<slot>.<generation>", so the node is the id without that suffix; a job taken by
-- another client (River's own) matches no node and is left to the stuck-job rescuer. Locks the
-- job rows; SKIP LOCKED: a row being completed right now is left for the next tick.
SELECT j.id, j.attempt, j.max_attempts, coalesce(array_length(j.errors, 1), 0) AS errors_count,
       n.node, n.last_seen
  FROM river_job j
  JOIN river_supervisor_node n
    ON n.cluster = %(cluster)s
   AND n.node_id = regexp_replace(j.attempted_by[array_length(j.attempted_by, 1)], '/w[0-9]+[.][0-9]+$', '')
 WHERE j.state = 'running'
   AND (n.stopped_at IS NOT NULL
        OR (%(judge_silence)s AND n.last_seen < now() - make_interval(secs => %(dead_after)s)))
 ORDER BY n.node, j.id
 LIMIT %(limit)s
   FOR UPDATE OF j SKIP LOCKED;
