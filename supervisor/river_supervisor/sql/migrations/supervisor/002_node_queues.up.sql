-- The queues each supervisor process serves, with its concurrency for each ({"default": 20}), so
-- `queues list` can say which hosts serve a queue. Not part of the fingerprint: hosts serving
-- different queues is a legitimate deployment, not drift.
ALTER TABLE river_supervisor_node ADD COLUMN queues jsonb NOT NULL DEFAULT '{}';
