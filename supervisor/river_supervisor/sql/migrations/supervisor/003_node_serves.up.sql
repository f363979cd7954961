-- What each supervisor process can work: {"queues": [...], "kinds": [...]}, published when it
-- registers. status, check and enqueue read it to name jobs that no live host can run (a kind
-- no live host has, a queue no live host serves). '{}' means unknown (a process from before).
ALTER TABLE river_supervisor_node ADD COLUMN IF NOT EXISTS serves jsonb NOT NULL DEFAULT '{}';
