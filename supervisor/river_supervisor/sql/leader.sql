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
