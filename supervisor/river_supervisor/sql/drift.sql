-- Configuration drift between nodes: distinct drifts (river_supervisor_drift), and the manifests
-- nodes publish in river_supervisor_node (written by nodes.py, only read here).

-- name: drift_record
-- Leader-only, inside a fenced transaction. Record the current drift %(digest)s (empty: none):
-- a new digest inserts a row and returns inserted = true (the caller alerts once); a known one
-- only refreshes last_seen. Every other open drift of the cluster is marked resolved.
-- Locks: the drift rows touched.
WITH resolved AS (
    UPDATE river_supervisor_drift
       SET resolved_at = now()
     WHERE cluster = %(cluster)s
       AND resolved_at IS NULL
       AND digest <> %(digest)s
    RETURNING digest
)
INSERT INTO river_supervisor_drift (cluster, digest, detail)
SELECT %(cluster)s, %(digest)s, %(detail)s::jsonb
 WHERE %(digest)s <> ''
    ON CONFLICT (cluster, digest) DO UPDATE
   SET last_seen = now(), resolved_at = NULL, detail = EXCLUDED.detail
RETURNING (xmax = 0) AS inserted, (SELECT count(*) FROM resolved) AS resolved;
