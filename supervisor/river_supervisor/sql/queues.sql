-- River's queue rows (river_queue): one per queue a host serves, kept as River's producers and
-- QueueCleaner keep them, so River UI and River's clients see and pause our queues as theirs.
-- Pause and resume write the row and notify "<current_schema()>.river_control" in the caller's
-- transaction, with River's payload {"action":"pause"|"resume","queue":"<name>"|"*"}.

-- name: queue_create_or_set_updated_at_many
-- River's QueueCreateOrSetUpdatedAt for each served queue: a new row gets metadata '{}' and no
-- pause; an existing row only has updated_at refreshed (its metadata and paused_at are the
-- operator's, never ours to change). Returns each row's paused_at. Row locks: the upserted rows.
INSERT INTO river_queue (created_at, metadata, name, paused_at, updated_at)
SELECT now(), '{}'::jsonb, name, NULL, now()
  FROM unnest(%(names)s::text[]) AS t(name)
 ORDER BY name
    ON CONFLICT (name) DO UPDATE
   SET updated_at = EXCLUDED.updated_at
RETURNING name, paused_at;

-- name: queue_delete_expired
-- River's QueueDeleteExpired (the leader's QueueCleaner): delete up to %(limit)s rows not
-- updated since %(horizon)s, in name order. Row locks: the deleted rows.
DELETE FROM river_queue
 WHERE name IN (
           SELECT name
             FROM river_queue
            WHERE updated_at < %(horizon)s
            ORDER BY name
            LIMIT %(limit)s
       )
RETURNING name;

-- name: queue_pause
-- River's QueuePause plus its river_control notification, in one statement: %(name)s or '*' (every
-- row) gets paused_at = now() unless already paused. The notification goes out even when no row
-- changed (as River's); the caller rolls back a named queue that has no row (River: not found).
WITH paused AS (
    UPDATE river_queue
       SET paused_at = CASE WHEN paused_at IS NULL THEN now() ELSE paused_at END,
           updated_at = CASE WHEN paused_at IS NULL THEN now() ELSE updated_at END
     WHERE CASE WHEN %(name)s::text = '*' THEN true ELSE name = %(name)s::text END
    RETURNING name
)
SELECT (SELECT count(*) FROM paused) AS queues,
       pg_notify(current_schema() || '.river_control',
                 '{"action":"pause","queue":' || to_json(%(name)s::text)::text || '}')::text AS notified;

-- name: queue_resume
-- River's QueueResume plus its river_control notification, in one statement: %(name)s or '*'
-- loses its pause. As queue_pause, the caller rolls back a named queue that has no row.
WITH resumed AS (
    UPDATE river_queue
       SET paused_at = NULL,
           updated_at = CASE WHEN paused_at IS NOT NULL THEN now() ELSE updated_at END
     WHERE CASE WHEN %(name)s::text = '*' THEN true ELSE name = %(name)s::text END
    RETURNING name
)
SELECT (SELECT count(*) FROM resumed) AS queues,
       pg_notify(current_schema() || '.river_control',
                 '{"action":"resume","queue":' || to_json(%(name)s::text)::text || '}')::text AS notified;

-- name: queue_list_paused
-- Which of the given queues (NULL: any) are paused now, by name: a worker's backstop poll of
-- River's pause state, and `status`.
SELECT name, paused_at
  FROM river_queue
 WHERE (%(names)s::text[] IS NULL OR name = ANY(%(names)s::text[]))
   AND paused_at IS NOT NULL
 ORDER BY name;

-- name: queue_list
-- Every queue for `queues list` and `status`: River's rows, plus queues that hold jobs but have no
-- row (no host has served them for River's retention). Job counts by state and the age of the
-- oldest available job (by the database clock) come from river_job. No locks.
WITH counts AS (
    SELECT queue, jsonb_object_agg(state, jobs) AS jobs
      FROM (SELECT queue, state::text AS state, count(*) AS jobs
              FROM river_job
             GROUP BY queue, state) AS by_state
     GROUP BY queue
),
oldest AS (
    SELECT queue, min(scheduled_at) AS scheduled_at
      FROM river_job
     WHERE state = 'available'
       AND scheduled_at <= now()
     GROUP BY queue
)
SELECT coalesce(q.name, c.queue) AS name,
       q.created_at, q.updated_at, q.paused_at, q.metadata,
       coalesce(c.jobs, '{}'::jsonb) AS jobs,
       extract(epoch FROM now() - o.scheduled_at)::float8 AS oldest_available_age
  FROM river_queue q
  FULL JOIN counts c ON c.queue = q.name
  LEFT JOIN oldest o ON o.queue = coalesce(q.name, c.queue)
 ORDER BY 1;
