-- The lease (river_supervisor_leader) and its history. One row per cluster; the database clock
-- decides expiry; terms come from river_supervisor_term_seq and only grow.

-- name: leader_hold_term
-- Fencing: inside a leader-only transaction, lock this term's lease row FOR SHARE so a takeover
-- (which must UPDATE or DELETE the row) waits until this transaction ends. No row: not leader.
SELECT term
  FROM river_supervisor_leader
 WHERE cluster = %(cluster)s
   AND leader_id = %(leader_id)s
   AND term = %(term)s
   AND expires_at > now()
   FOR SHARE;

-- name: leader_bound_transaction
-- A leader paused inside a transaction keeps its row locks and would block every takeover:
-- bound how long it may wait for a lock and how long it may sit idle.
SELECT set_config('lock_timeout', %(lock_timeout)s, true),
       set_config('idle_in_transaction_session_timeout', %(idle_timeout)s, true);

-- name: leader_session_setup
-- Once per lease connection: pin the schema (NULL keeps the server's search_path) and bound every
-- statement, lock waits included, so a step of the elector cannot stall the parent loop for long.
SELECT set_config('search_path', coalesce(quote_ident(%(schema)s), current_setting('search_path')), false),
       set_config('statement_timeout', %(statement_timeout)s, false),
       set_config('lock_timeout', %(lock_timeout)s, false);

-- name: leader_session_info
-- The schema notifications are named after, and this backend's pid (the lease's backend_pid).
SELECT current_schema() AS schema, pg_backend_pid() AS backend_pid;

-- name: leader_campaign
-- One bid for the lease, in one statement. Wins when no row exists (insert), or takes over a row
-- whose lease expired by the database clock, whose holder's lease connection (backend_pid) is the
-- one this bidder already saw gone a grace ago (gone_backend: a crashed leader, detected long
-- before its lease runs out; a leader whose session was killed reconnects within the grace and
-- renews, which records its new backend; a paused leader keeps its connection and is only replaced
-- on expiry), or which is this process's own stale term. A losing bid returns the holder
-- (won = false) and whether its lease session is gone, so the bidder can time that grace.
-- A new term is drawn from the sequence only for a winning row (a lost insert race may burn one:
-- terms only grow, they may skip). The takeover UPDATE locks the row, so it waits for fenced
-- transactions holding it FOR SHARE; `l.term = cur.term` makes it replace exactly the row it read
-- (a concurrent winner makes this bid lose). A losing bid writes nothing and takes no row lock.
-- History: the previous holder's end (expired; superseded when its backend vanished; lost when it
-- was our own term, already given up locally) and our gain, in the same statement.
WITH cur AS (
    SELECT cluster, leader_id, node, term, renewed_at, backend_pid, expires_at <= now() AS expired,
           NOT EXISTS (SELECT FROM pg_stat_get_activity(backend_pid)) AS backend_gone
      FROM river_supervisor_leader
     WHERE cluster = %(cluster)s
),
taken AS (
    UPDATE river_supervisor_leader l
       SET leader_id = %(leader_id)s,
           node = %(node)s,
           pid = %(pid)s,
           term = nextval('river_supervisor_term_seq'),
           backend_pid = pg_backend_pid(),
           elected_at = now(),
           renewed_at = now(),
           expires_at = now() + make_interval(secs => %(ttl)s)
      FROM cur
     WHERE l.cluster = cur.cluster
       AND l.term = cur.term
       AND (l.expires_at <= now()
            OR l.leader_id = %(leader_id)s
            OR (l.backend_pid = %(gone_backend)s
                AND NOT EXISTS (SELECT FROM pg_stat_get_activity(l.backend_pid))))
 RETURNING l.cluster, l.leader_id, l.node, l.term, l.elected_at, l.expires_at,
           cur.leader_id AS previous_leader_id, cur.node AS previous_node, cur.term AS previous_term,
           cur.renewed_at AS previous_renewed_at,
           CASE WHEN cur.expired THEN 'expired'
                WHEN cur.leader_id = %(leader_id)s THEN 'lost'
                ELSE 'superseded' END AS previous_event,
           CASE WHEN cur.expired THEN 'lease_expired'
                WHEN cur.leader_id = %(leader_id)s THEN 'stepped_down'
                ELSE 'backend_gone' END AS previous_reason
),
inserted AS (
    INSERT INTO river_supervisor_leader
        (cluster, leader_id, node, pid, term, backend_pid, elected_at, renewed_at, expires_at)
    SELECT %(cluster)s, %(leader_id)s, %(node)s, %(pid)s, nextval('river_supervisor_term_seq'),
           pg_backend_pid(), now(), now(), now() + make_interval(secs => %(ttl)s)
     WHERE NOT EXISTS (SELECT FROM cur)
        ON CONFLICT (cluster) DO NOTHING
 RETURNING cluster, leader_id, node, term, elected_at, expires_at,
           NULL::text AS previous_leader_id, NULL::text AS previous_node, NULL::bigint AS previous_term,
           NULL::timestamptz AS previous_renewed_at, NULL::text AS previous_event, NULL::text AS previous_reason
),
won AS (
    SELECT * FROM taken
    UNION ALL
    SELECT * FROM inserted
),
history AS (
    INSERT INTO river_supervisor_leader_event (cluster, term, event, leader_id, node, other_leader_id, detail, at)
    SELECT cluster, previous_term, previous_event, previous_leader_id, previous_node, leader_id,
           jsonb_build_object('reason', previous_reason, 'next_term', term), elected_at
      FROM won
     WHERE previous_leader_id IS NOT NULL
    UNION ALL
    SELECT cluster, term, 'gained', leader_id, node, previous_leader_id,
           jsonb_strip_nulls(jsonb_build_object('previous_term', previous_term,
                                                'previous_reason', previous_reason)),
           elected_at
      FROM won
)
SELECT true AS won, cluster, leader_id, node, term, elected_at, expires_at,
       previous_leader_id, previous_node, previous_term, previous_renewed_at, previous_event, previous_reason,
       NULL::int AS backend_pid, NULL::bool AS backend_gone
  FROM won
UNION ALL
SELECT false, cluster, leader_id, node, term, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       backend_pid, backend_gone
  FROM cur
 WHERE NOT EXISTS (SELECT FROM won);

-- name: leader_renew
-- Extend this term's lease, only while it is still ours and unexpired (database clock). No row:
-- the term is over (expired, superseded, resigned, or the table was emptied). Locks the row
-- (FOR NO KEY UPDATE), so it waits for fenced transactions of our own services, bounded by
-- lock_timeout. Records the backend renewing: after a reconnect, the lease's session is this one.
UPDATE river_supervisor_leader
   SET renewed_at = now(),
       backend_pid = pg_backend_pid(),
       expires_at = now() + make_interval(secs => %(ttl)s)
 WHERE cluster = %(cluster)s
   AND leader_id = %(leader_id)s
   AND term = %(term)s
   AND expires_at > now()
RETURNING term, expires_at;

-- name: leader_resign
-- Give the lease up: delete this term's row, write the 'resigned' history row and notify
-- followers on "<schema>.river_supervisor_leadership", all in one statement (the notification is
-- delivered at commit, so no follower can see it before the row is gone).
WITH gone AS (
    DELETE FROM river_supervisor_leader
     WHERE cluster = %(cluster)s
       AND leader_id = %(leader_id)s
       AND term = %(term)s
 RETURNING cluster, leader_id, node, term
),
history AS (
    INSERT INTO river_supervisor_leader_event (cluster, term, event, leader_id, node)
    SELECT cluster, term, 'resigned', leader_id, node FROM gone
)
SELECT term,
       pg_notify(concat(current_schema(), '.river_supervisor_leadership'),
                 json_build_object('action', 'resigned', 'cluster', cluster,
                                   'leader_id', leader_id, 'term', term)::text)::text AS notified
  FROM gone;

-- name: leader_request_resign
-- Ask a cluster's leader to step down (River's request_resign, naming the cluster) on
-- "<schema>.river_supervisor_leadership"; delivered at commit. Returns the database time sent.
SELECT clock_timestamp() AS sent_at,
       pg_notify(concat(current_schema(), '.river_supervisor_leadership'),
                 json_build_object('action', 'request_resign', 'cluster', %(cluster)s::text)::text)::text
           AS notified;

-- name: leader_get
-- Who holds a cluster's lease, whether it is still valid and whether its lease connection lives.
SELECT cluster, leader_id, node, pid, term, backend_pid, elected_at, renewed_at, expires_at,
       expires_at > now() AS live,
       EXISTS (SELECT FROM pg_stat_get_activity(backend_pid)) AS backend_alive
  FROM river_supervisor_leader
 WHERE cluster = %(cluster)s;

-- name: leader_event_list
-- Leadership history of a cluster, newest first.
SELECT id, cluster, term, event, leader_id, node, other_leader_id, detail, at
  FROM river_supervisor_leader_event
 WHERE cluster = %(cluster)s
 ORDER BY id DESC
 LIMIT %(limit)s;
