-- Periodic schedules: durable state per schedule (river_supervisor_periodic) and the slot ledger
-- (river_supervisor_periodic_slot, primary key (cluster, periodic_id, slot)). Every write here is
-- leader-only and runs inside leadership.fenced_transaction, which holds the lease row FOR SHARE.

-- name: periodic_register_many
-- On gaining leadership: upsert one row per schedule this leader defines and return its durable
-- state. A changed schedule text restarts the schedule at %(now)s (registered_at), so a new
-- cadence does not count the old one's gap as missed; last_slot stays, so no slot is redone.
-- Locks: the upserted rows (row locks until commit).
INSERT INTO river_supervisor_periodic AS p (cluster, id, kind, schedule, next_run_at, defined_by, registered_at)
SELECT %(cluster)s, t.id, t.kind, t.schedule, NULL, %(node)s, %(now)s
  FROM unnest(%(ids)s::text[], %(kinds)s::text[], %(schedules)s::text[]) AS t(id, kind, schedule)
    ON CONFLICT (cluster, id) DO UPDATE
   SET kind = EXCLUDED.kind,
       schedule = EXCLUDED.schedule,
       defined_by = EXCLUDED.defined_by,
       registered_at = CASE WHEN p.schedule IS DISTINCT FROM EXCLUDED.schedule
                            THEN EXCLUDED.registered_at ELSE p.registered_at END,
       updated_at = now()
RETURNING p.id, p.last_slot, p.registered_at, p.last_job_id;

-- name: periodic_enqueue_many
-- One pass of the enqueuer, one statement: claim every decided slot in the ledger (ON CONFLICT
-- DO NOTHING: a slot already claimed is never enqueued again), insert a River job for each newly
-- claimed 'enqueued' slot (its id drawn beforehand so the ledger row names it), turn an
-- overlap=skip slot into 'skipped_overlap' while the schedule's previous job is still waiting or
-- running, advance each schedule's last_slot/next_run_at/last_job_id, and send River's insert
-- notification once per queue (delivered at commit). Returns the slots actually claimed.
-- Locks: inserted rows; the updated river_supervisor_periodic rows.
WITH input AS (
    SELECT *
      FROM unnest(%(ids)s::text[], %(slots)s::timestamptz[], %(outcomes)s::text[], %(kinds)s::text[],
                  %(args)s::text[], %(queues)s::text[], %(priorities)s::smallint[],
                  %(max_attempts)s::smallint[], %(overlap_skip)s::boolean[], %(details)s::text[])
           AS t(periodic_id, slot, outcome, kind, args, queue, priority, max_attempts, overlap_skip, detail)
),
busy AS (
    SELECT p.id
      FROM river_supervisor_periodic p
      JOIN river_job j ON j.id = p.last_job_id
     WHERE p.cluster = %(cluster)s
       AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
),
numbered AS (
    SELECT d.*,
           CASE WHEN d.final = 'enqueued' THEN nextval(pg_get_serial_sequence('river_job', 'id')) END AS job_id
      FROM (SELECT i.*,
                   CASE WHEN i.outcome = 'enqueued' AND i.overlap_skip AND i.periodic_id IN (SELECT id FROM busy)
                        THEN 'skipped_overlap' ELSE i.outcome END AS final
              FROM input i) d
),
claimed AS (
    INSERT INTO river_supervisor_periodic_slot (cluster, periodic_id, slot, outcome, job_id, term, leader_id, detail)
    SELECT %(cluster)s, n.periodic_id, n.slot, n.final, n.job_id, %(term)s, %(leader_id)s, n.detail::jsonb
      FROM numbered n
        ON CONFLICT (cluster, periodic_id, slot) DO NOTHING
    RETURNING periodic_id, slot, outcome, job_id
),
jobs AS (
    INSERT INTO river_job (id, args, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags)
    SELECT c.job_id, n.args::jsonb, n.kind, n.max_attempts,
           jsonb_build_object('periodic', true, 'river:periodic_job_id', c.periodic_id,
                              'river_supervisor:slot', c.slot),
           n.priority, n.queue, c.slot, 'available', ARRAY['periodic']::varchar(255)[]
      FROM claimed c
      JOIN numbered n USING (periodic_id, slot)
     WHERE c.outcome = 'enqueued'
    RETURNING id, queue
),
advanced AS (
    UPDATE river_supervisor_periodic p
       SET last_slot = greatest(p.last_slot, s.last_slot),
           next_run_at = s.next_run_at,
           last_job_id = coalesce((SELECT c.job_id FROM claimed c
                                    WHERE c.periodic_id = p.id AND c.job_id IS NOT NULL
                                    ORDER BY c.slot DESC LIMIT 1), p.last_job_id),
           updated_at = now()
      FROM unnest(%(state_ids)s::text[], %(last_slots)s::timestamptz[], %(next_run_ats)s::timestamptz[])
           AS s(id, last_slot, next_run_at)
     WHERE p.cluster = %(cluster)s
       AND p.id = s.id
    RETURNING p.id
),
notified AS (
    SELECT pg_notify(current_schema() || '.river_insert', json_build_object('queue', q.queue)::text)
      FROM (SELECT DISTINCT queue FROM jobs) q
)
SELECT c.periodic_id, c.slot, c.outcome, c.job_id,
       (SELECT count(*) FROM notified) AS queues_notified,
       (SELECT count(*) FROM advanced) AS schedules_advanced
  FROM claimed c
 ORDER BY c.periodic_id, c.slot;

-- name: periodic_prune_slots
-- Keep the ledger bounded: delete at most %(limit)s ledger rows of slots before %(before)s.
-- Older slots are behind every schedule's last_slot, so the ledger no longer guards them.
-- Locks: the deleted rows.
DELETE FROM river_supervisor_periodic_slot
 WHERE (cluster, periodic_id, slot) IN (
        SELECT cluster, periodic_id, slot
          FROM river_supervisor_periodic_slot
         WHERE cluster = %(cluster)s
           AND slot < %(before)s
         LIMIT %(limit)s);

-- name: periodic_list
-- Read-only: every schedule the cluster has durable state for (status, orphan reports).
SELECT id, kind, schedule, last_slot, next_run_at, last_job_id, defined_by, registered_at, updated_at
  FROM river_supervisor_periodic
 WHERE cluster = %(cluster)s
 ORDER BY id;
