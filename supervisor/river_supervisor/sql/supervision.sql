-- What the supervisor parent asks of river_job about its own workers.

-- name: job_running_ids_by_worker
-- Jobs a worker process fetched (it is the last entry of attempted_by) and that are still
-- running: after the worker died, the ones it took but had not yet reported to the parent.
-- Uses river_job_prioritized_fetching_index's leading state column; running jobs are few.
SELECT id
  FROM river_job
 WHERE state = 'running'
   AND attempted_by[array_length(attempted_by, 1)] = %(worker_id)s
 ORDER BY id;
