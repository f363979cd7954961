-- River job rows (river_job): insert, fetch, outcomes, maintenance and operator actions.
-- Every batch is one statement over unnest() arrays. Notifications go to
-- "<current_schema()>.river_insert" / ".river_control" with River's payloads, inside the
-- statement, so they are delivered only if the caller's transaction commits.

-- name: job_insert_many
-- River's JobInsertFastMany: one row per array element, in input order. A unique job whose key is
-- held by a row in one of its unique_states returns that row instead (unique_skipped_as_duplicate).
-- Sends one river_insert per distinct queue that received an available job. Row locks: the
-- inserted rows, and the conflicting row on a unique duplicate (DO UPDATE).
WITH input AS (
    SELECT *
      FROM unnest(
               %(args)s::jsonb[], %(kind)s::text[], %(max_attempts)s::smallint[], %(metadata)s::jsonb[],
               %(priority)s::smallint[], %(queue)s::text[], %(scheduled_at)s::timestamptz[],
               %(pending)s::boolean[], %(tags)s::text[], %(unique_key)s::bytea[],
               %(unique_states)s::integer[]
           ) WITH ORDINALITY AS t(args, kind, max_attempts, metadata, priority, queue, scheduled_at,
                                  pending, tags, unique_key, unique_states, ord)
),
inserted AS (
    INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags,
                           unique_key, unique_states)
    SELECT args, kind, max_attempts, metadata, priority, queue, coalesce(scheduled_at, now()),
           CASE WHEN pending THEN 'pending'
                WHEN scheduled_at > now() THEN 'scheduled'
                ELSE 'available' END::river_job_state,
           coalesce(string_to_array(tags, ','), '{}'), unique_key, unique_states::bit(8)
      FROM input
     ORDER BY ord
        ON CONFLICT (unique_key)
           WHERE unique_key IS NOT NULL
             AND unique_states IS NOT NULL
             AND river_job_state_in_bitmask(unique_states, state)
        DO UPDATE SET kind = EXCLUDED.kind
    RETURNING river_job.*, (xmax != 0) AS unique_skipped_as_duplicate
),
notified AS (
    SELECT count(pg_notify(current_schema() || '.river_insert', '{"queue": ' || to_json(queue)::text || '}'))
      FROM (SELECT DISTINCT queue FROM inserted
             WHERE state = 'available' AND NOT unique_skipped_as_duplicate) AS queues
)
SELECT inserted.*, inserted.unique_states::integer AS unique_states_int
  FROM inserted CROSS JOIN notified;

-- name: job_insert_copy
-- River's JobInsertFastManyNoReturning (COPY FROM STDIN): no unique handling, nothing returned.
-- Text rows (built in Python, one write; faster here than binary rows built per value):
-- args, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags.
COPY river_job (args, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags)
FROM STDIN;

-- name: job_notify_insert
-- One river_insert per queue, River's payload {"queue": "<name>"}; after a COPY, same transaction.
SELECT count(pg_notify(current_schema() || '.river_insert', '{"queue": ' || to_json(queue)::text || '}'))
  FROM (SELECT DISTINCT unnest(%(queues)s::text[]) AS queue) AS queues;

-- name: job_fetch
-- River's JobGetAvailable: lock up to %(limit)s due available jobs of one queue in River's order
-- (priority, scheduled_at, id), skipping rows other fetchers hold, and mark them running:
-- attempt+1, attempted_at, worker appended to attempted_by (last 100 kept, as River).
-- %(kinds)s: only jobs of these kinds (NULL: any kind). Nothing from a paused queue.
WITH locked AS (
    SELECT id
      FROM river_job
     WHERE state = 'available'
       AND queue = %(queue)s
       AND scheduled_at <= now()
       AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
       -- a paused queue (River's river_queue.paused_at) yields nothing, from the pause's commit on
       AND NOT EXISTS (SELECT FROM river_queue WHERE name = %(queue)s AND paused_at IS NOT NULL)
     ORDER BY priority, scheduled_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
),
updated AS (
    UPDATE river_job
       SET state = 'running',
           attempt = river_job.attempt + 1,
           attempted_at = now(),
           attempted_by = CASE
               WHEN cardinality(river_job.attempted_by) >= 100
                   THEN (river_job.attempted_by || %(worker_id)s::text)[cardinality(river_job.attempted_by) - 98:]
               ELSE array_append(river_job.attempted_by, %(worker_id)s::text) END
      FROM locked
     WHERE river_job.id = locked.id
    RETURNING river_job.*
)
SELECT updated.*, updated.unique_states::integer AS unique_states_int
  FROM updated
 ORDER BY priority, scheduled_at, id;

-- name: job_fetch_for_work
-- job_fetch for a worker: the same rows and locks, but only the columns a handler's Job needs, JSON
-- as text (decoded once in Python) and the number of errors instead of the errors themselves.
-- Only the kinds in %(kinds)s, the ones this host has handlers for: a job no plugin here can run
-- is left for a host that can, instead of failing here and burning its attempts. Nothing from a
-- paused queue.
WITH locked AS (
    SELECT id
      FROM river_job
     WHERE state = 'available'
       AND queue = %(queue)s
       AND scheduled_at <= now()
       AND kind = ANY(%(kinds)s::text[])
       -- a paused queue yields nothing, from the pause's commit on, before the worker has heard
       -- of it (the worker skips a queue it knows is paused: no statement at all)
       AND NOT EXISTS (SELECT FROM river_queue WHERE name = %(queue)s AND paused_at IS NOT NULL)
     ORDER BY priority, scheduled_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
),
updated AS (
    UPDATE river_job
       SET state = 'running',
           attempt = river_job.attempt + 1,
           attempted_at = now(),
           attempted_by = CASE
               WHEN cardinality(river_job.attempted_by) >= 100
                   THEN (river_job.attempted_by || %(worker_id)s::text)[cardinality(river_job.attempted_by) - 98:]
               ELSE array_append(river_job.attempted_by, %(worker_id)s::text) END
      FROM locked
     WHERE river_job.id = locked.id
    RETURNING river_job.id, river_job.kind, river_job.args, river_job.queue, river_job.priority,
              river_job.attempt, river_job.max_attempts, river_job.metadata, river_job.scheduled_at,
              river_job.tags, river_job.errors
)
SELECT id, kind, args::text AS args, queue, priority, attempt, max_attempts, metadata::text AS metadata,
       scheduled_at, tags, coalesce(cardinality(errors), 0) AS errors_count
  FROM updated
 ORDER BY priority, scheduled_at, id;

-- name: job_set_state_if_running_many
-- River's JobSetStateIfRunningMany: record worker outcomes, changing only rows still running.
-- A job whose cancel was attempted (metadata cancel_attempted_at) and that would run again
-- (available/retryable/scheduled) is cancelled instead; the cancel test reads the locked row
-- version, so a concurrent cancel is never missed. snooze: metadata.snoozes + 1 (River's
-- coercion of odd values); rescue: metadata."river:rescue_count" + 1; output: a completed
-- handler's result, kept as metadata "output" (River's key). Row locks: the updated rows.
WITH input AS (
    SELECT *
      FROM unnest(
               %(id)s::bigint[], %(state)s::text[], %(attempt_delta)s::integer[], %(error)s::jsonb[],
               %(finalize)s::boolean[], %(scheduled_at)s::timestamptz[], %(snooze)s::boolean[],
               %(rescue)s::boolean[], %(output)s::jsonb[]
           ) AS t(id, state, attempt_delta, error, finalize, scheduled_at, snooze, rescue, output)
),
decided AS (
    SELECT input.*, coalesce(%(now)s::timestamptz, now()) AS now
      FROM input
)
UPDATE river_job
   SET state = CASE
           WHEN decided.state IN ('available', 'retryable', 'scheduled')
                AND river_job.metadata ? 'cancel_attempted_at' THEN 'cancelled'
           ELSE decided.state END::river_job_state,
       attempt = CASE
           WHEN decided.state IN ('available', 'retryable', 'scheduled')
                AND river_job.metadata ? 'cancel_attempted_at' THEN river_job.attempt
           ELSE river_job.attempt + decided.attempt_delta END,
       finalized_at = CASE
           WHEN decided.finalize THEN decided.now
           WHEN decided.state IN ('available', 'retryable', 'scheduled')
                AND river_job.metadata ? 'cancel_attempted_at' THEN decided.now
           ELSE river_job.finalized_at END,
       scheduled_at = CASE
           WHEN decided.state IN ('available', 'retryable', 'scheduled')
                AND river_job.metadata ? 'cancel_attempted_at' THEN river_job.scheduled_at
           ELSE coalesce(decided.scheduled_at, river_job.scheduled_at) END,
       errors = CASE
           WHEN decided.error IS NULL THEN river_job.errors
           ELSE array_append(river_job.errors, decided.error) END,
       metadata = CASE
           WHEN decided.snooze THEN jsonb_set(river_job.metadata, '{snoozes}', to_jsonb(1 + CASE jsonb_typeof(river_job.metadata -> 'snoozes')
               WHEN 'number' THEN trunc((river_job.metadata ->> 'snoozes')::numeric)
               WHEN 'boolean' THEN CASE WHEN (river_job.metadata ->> 'snoozes')::boolean THEN 1 ELSE 0 END
               WHEN 'string' THEN CASE WHEN river_job.metadata ->> 'snoozes' ~ '^-?[0-9]+$'
                                       THEN (river_job.metadata ->> 'snoozes')::numeric ELSE 0 END
               ELSE 0 END))
           WHEN decided.rescue THEN jsonb_set(river_job.metadata, '{river:rescue_count}', to_jsonb(1 + CASE
               WHEN jsonb_typeof(river_job.metadata -> 'river:rescue_count') = 'number'
                   THEN trunc((river_job.metadata ->> 'river:rescue_count')::numeric)
               ELSE 0 END))
           WHEN decided.output IS NOT NULL THEN river_job.metadata || jsonb_build_object('output', decided.output)
           ELSE river_job.metadata END
  FROM decided
 WHERE river_job.id = decided.id
   AND river_job.state = 'running'
RETURNING river_job.id;

-- name: job_set_complete_if_running_many
-- River's JobSetCompleteIfRunningMany: the common batch where every job completed. The same change
-- as job_set_state_if_running_many for state 'completed' (finalized_at set, nothing else touched),
-- from one id array (a '{1,2,...}' literal). A join on unnest(), not id = ANY(...): that one may be
-- planned as a scan of every 'running' index entry, dead ones included. Row locks: the updated rows.
UPDATE river_job
   SET state = 'completed',
       finalized_at = coalesce(%(now)s::timestamptz, now())
  FROM unnest(%(id)s::bigint[]) AS input(id)
 WHERE river_job.id = input.id
   AND river_job.state = 'running';

-- name: job_select_running
-- Jobs still running among %(ids)s, locked so the outcome written next is decided on this version.
SELECT id, attempt, max_attempts, coalesce(array_length(errors, 1), 0) AS errors_count
  FROM river_job
 WHERE id = ANY(%(ids)s::bigint[])
   AND state = 'running'
 ORDER BY id
   FOR UPDATE;

-- name: job_select_stuck
-- River's JobRescuer candidates: running jobs attempted before %(stuck_before)s. SKIP LOCKED: a
-- row being completed right now is not stuck.
SELECT id, attempt, max_attempts, coalesce(array_length(errors, 1), 0) AS errors_count
  FROM river_job
 WHERE state = 'running'
   AND attempted_at < %(stuck_before)s
 ORDER BY id
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED;

-- name: job_schedule
-- River's JobSchedule: scheduled/retryable jobs due by %(now)s become available, in River's order.
-- A unique job whose key another row now holds (or an earlier job of this batch takes) is
-- discarded with metadata unique_key_conflict = scheduler_discarded. Sends one river_insert per
-- queue that received an available job. Row locks: the due rows (SKIP LOCKED: a concurrent run
-- leaves them alone).
WITH due AS (
    SELECT id, unique_key, unique_states, priority, scheduled_at
      FROM river_job
     WHERE state IN ('retryable', 'scheduled')
       AND scheduled_at <= %(now)s
     ORDER BY priority, scheduled_at, id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
),
numbered AS (
    SELECT due.*,
           CASE WHEN unique_key IS NOT NULL AND unique_states IS NOT NULL
                THEN row_number() OVER (PARTITION BY unique_key ORDER BY priority, scheduled_at, id) END AS row_num
      FROM due
),
conflicts AS (
    SELECT DISTINCT river_job.unique_key
      FROM river_job
      JOIN numbered ON river_job.unique_key = numbered.unique_key AND river_job.id <> numbered.id
     WHERE river_job.unique_key IS NOT NULL
       AND river_job.unique_states IS NOT NULL
       AND river_job_state_in_bitmask(river_job.unique_states, river_job.state)
),
decided AS (
    SELECT numbered.id,
           (numbered.row_num IS NOT NULL AND (conflicts.unique_key IS NOT NULL OR numbered.row_num > 1)) AS discard
      FROM numbered
      LEFT JOIN conflicts ON conflicts.unique_key = numbered.unique_key
),
updated AS (
    UPDATE river_job
       SET state = CASE WHEN decided.discard THEN 'discarded' ELSE 'available' END::river_job_state,
           finalized_at = CASE WHEN decided.discard THEN %(now)s ELSE river_job.finalized_at END,
           metadata = CASE WHEN decided.discard
                           THEN river_job.metadata || '{"unique_key_conflict": "scheduler_discarded"}'::jsonb
                           ELSE river_job.metadata END
      FROM decided
     WHERE river_job.id = decided.id
    RETURNING river_job.id, river_job.queue, river_job.state
),
notified AS (
    SELECT count(pg_notify(current_schema() || '.river_insert', '{"queue": ' || to_json(queue)::text || '}'))
      FROM (SELECT DISTINCT queue FROM updated WHERE state = 'available') AS queues
)
SELECT updated.queue, updated.state::text AS state, count(*) AS jobs
  FROM updated CROSS JOIN notified
 GROUP BY updated.queue, updated.state;

-- name: job_clean
-- River's JobCleaner: delete finalized jobs older than their state's retention, at most %(limit)s.
WITH doomed AS (
    SELECT id
      FROM river_job
     WHERE (state = 'completed' AND finalized_at < %(completed_before)s)
        OR (state = 'cancelled' AND finalized_at < %(cancelled_before)s)
        OR (state = 'discarded' AND finalized_at < %(discarded_before)s)
     ORDER BY id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
DELETE FROM river_job
 USING doomed
 WHERE river_job.id = doomed.id;

-- name: job_get
-- One job by id (jobs show, retry and cancel read it back). No locks.
SELECT river_job.*, unique_states::integer AS unique_states_int
  FROM river_job
 WHERE id = %(id)s;

-- name: job_list
-- Jobs oldest first (keyset pagination: ids after %(after_id)s, before %(before_id)s; NULL: no
-- bound); empty filter arrays mean "any".
SELECT river_job.*, unique_states::integer AS unique_states_int
  FROM river_job
 WHERE (cardinality(%(states)s::text[]) = 0 OR state::text = ANY(%(states)s::text[]))
   AND (cardinality(%(kinds)s::text[]) = 0 OR kind = ANY(%(kinds)s::text[]))
   AND (cardinality(%(queues)s::text[]) = 0 OR queue = ANY(%(queues)s::text[]))
   AND (%(after_id)s::bigint IS NULL OR id > %(after_id)s::bigint)
   AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
 ORDER BY id
 LIMIT %(limit)s;

-- name: job_list_newest
-- job_list newest first (River UI's and Celery's default order): the same filters and bounds.
SELECT river_job.*, unique_states::integer AS unique_states_int
  FROM river_job
 WHERE (cardinality(%(states)s::text[]) = 0 OR state::text = ANY(%(states)s::text[]))
   AND (cardinality(%(kinds)s::text[]) = 0 OR kind = ANY(%(kinds)s::text[]))
   AND (cardinality(%(queues)s::text[]) = 0 OR queue = ANY(%(queues)s::text[]))
   AND (%(after_id)s::bigint IS NULL OR id > %(after_id)s::bigint)
   AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: job_count_listed
-- How many jobs match job_list's filters and bounds, counted up to %(cap)s (a listing says how
-- many more there are without scanning a huge table to the end). No locks.
SELECT count(*) AS jobs
  FROM (SELECT 1
          FROM river_job
         WHERE (cardinality(%(states)s::text[]) = 0 OR state::text = ANY(%(states)s::text[]))
           AND (cardinality(%(kinds)s::text[]) = 0 OR kind = ANY(%(kinds)s::text[]))
           AND (cardinality(%(queues)s::text[]) = 0 OR queue = ANY(%(queues)s::text[]))
           AND (%(after_id)s::bigint IS NULL OR id > %(after_id)s::bigint)
           AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
         LIMIT %(cap)s) AS matching;

-- name: job_retry
-- River's JobRetry: any state but running becomes available now (finalized_at cleared,
-- max_attempts + 1 if exhausted); an available job already due is left alone; a running job is
-- returned unchanged. Notifies river_insert for the job's queue. Row lock: the job.
WITH locked AS (
    SELECT id FROM river_job WHERE id = %(id)s FOR UPDATE
),
updated AS (
    UPDATE river_job
       SET state = 'available',
           scheduled_at = now(),
           finalized_at = NULL,
           max_attempts = CASE WHEN river_job.attempt >= river_job.max_attempts
                               THEN river_job.max_attempts + 1 ELSE river_job.max_attempts END
      FROM locked
     WHERE river_job.id = locked.id
       AND river_job.state <> 'running'
       AND NOT (river_job.state = 'available' AND river_job.scheduled_at <= now())
    RETURNING river_job.*
),
notified AS (
    SELECT count(pg_notify(current_schema() || '.river_insert', '{"queue": ' || to_json(queue)::text || '}'))
      FROM updated
)
SELECT updated.*, updated.unique_states::integer AS unique_states_int
  FROM updated CROSS JOIN notified
UNION ALL
SELECT river_job.*, river_job.unique_states::integer
  FROM river_job
 WHERE id = %(id)s
   AND NOT EXISTS (SELECT 1 FROM updated);

-- name: job_cancel
-- River's JobCancel: a job not yet finalized gets metadata cancel_attempted_at and a river_control
-- {"action": "cancel", "job_id", "queue"} notification; unless running it is cancelled at once
-- (a running job is cancelled by its worker, or on its next outcome). Row lock: the job.
WITH locked AS (
    SELECT id, queue FROM river_job WHERE id = %(id)s AND finalized_at IS NULL FOR UPDATE
),
notified AS (
    SELECT id, pg_notify(current_schema() || '.river_control',
                         jsonb_build_object('action', 'cancel', 'job_id', id, 'queue', queue)::text)
      FROM locked
),
updated AS (
    UPDATE river_job
       SET state = CASE WHEN river_job.state = 'running' THEN river_job.state ELSE 'cancelled' END,
           finalized_at = CASE WHEN river_job.state = 'running' THEN NULL ELSE now() END,
           metadata = jsonb_set(river_job.metadata, '{cancel_attempted_at}',
                                to_jsonb(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
      FROM notified
     WHERE river_job.id = notified.id
    RETURNING river_job.*
)
SELECT updated.*, updated.unique_states::integer AS unique_states_int
  FROM updated
UNION ALL
SELECT river_job.*, river_job.unique_states::integer
  FROM river_job
 WHERE id = %(id)s
   AND NOT EXISTS (SELECT 1 FROM updated);

-- name: job_queue_gauges
-- Per queue, the jobs waiting or running and how long the oldest available one has waited, for
-- the metrics endpoint (which caches it for a few seconds). Reads only the unfinished states; no locks.
SELECT queue,
       count(*) FILTER (WHERE state = 'available') AS available,
       count(*) FILTER (WHERE state = 'running') AS running,
       count(*) FILTER (WHERE state = 'retryable') AS retryable,
       coalesce(greatest(0, extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE state = 'available'))), 0)
           AS oldest_available_age
  FROM river_job
 WHERE state IN ('available', 'running', 'retryable')
 GROUP BY queue
 ORDER BY queue;

-- name: job_count_by_queue_and_state
-- Jobs per queue and state, for status. A full scan of river_job; no locks.
SELECT queue, state::text AS state, count(*) AS jobs
  FROM river_job
 GROUP BY queue, state
 ORDER BY queue, state;

-- name: job_count_waiting_by_queue_and_kind
-- Jobs waiting to be worked (available, scheduled, retryable) per queue and kind, for the report
-- of jobs no live host can run. A scan of river_job; no locks.
SELECT queue, kind, count(*) AS jobs
  FROM river_job
 WHERE state IN ('available', 'scheduled', 'retryable')
 GROUP BY queue, kind
 ORDER BY queue, kind;
