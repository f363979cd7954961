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
