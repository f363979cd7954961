-- river-supervisor's own migration line ("supervisor"): leadership, nodes, periodic state, drift.
-- Never touches River's tables.

-- Terms only grow: a sequence is never reset by a crash or by deleting the lease row.
CREATE SEQUENCE river_supervisor_term_seq;

-- One lease per cluster. expires_at comes from the database clock. backend_pid is the leader's
-- lease connection: once it vanishes from pg_stat_activity the leader is gone, before expiry.
CREATE TABLE river_supervisor_leader(
    cluster text PRIMARY KEY,
    leader_id text NOT NULL,
    node text NOT NULL,
    pid integer NOT NULL,
    term bigint NOT NULL,
    backend_pid integer NOT NULL,
    elected_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT cluster_length CHECK (char_length(cluster) > 0 AND char_length(cluster) < 128)
);

-- Every leadership change, written in the transaction that made it where possible.
CREATE TABLE river_supervisor_leader_event(
    id bigserial PRIMARY KEY,
    cluster text NOT NULL,
    term bigint,
    event text NOT NULL,
    leader_id text NOT NULL,
    node text NOT NULL,
    other_leader_id text,
    detail jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_name CHECK (event IN ('gained', 'resigned', 'lost', 'expired', 'superseded'))
);

CREATE INDEX river_supervisor_leader_event_cluster_at ON river_supervisor_leader_event (cluster, at);

-- Each running supervisor process: identity (node, pid, boot id), heartbeat, and the fingerprint
-- of its periodic configuration and plugins, which the leader compares.
CREATE TABLE river_supervisor_node(
    cluster text NOT NULL,
    node_id text NOT NULL,
    node text NOT NULL,
    pid integer NOT NULL,
    boot_id text NOT NULL,
    backend_pid integer,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    fingerprint text NOT NULL DEFAULT '',
    manifest jsonb NOT NULL DEFAULT '{}',
    drift boolean NOT NULL DEFAULT false,
    PRIMARY KEY (cluster, node_id)
);

-- Durable state per schedule: a new leader continues from last_slot (the newest slot decided,
-- enqueued or skipped); a schedule never decided starts after registered_at. defined_by is the
-- node of the leader that last defined it, named when a later leader does not (an orphan).
CREATE TABLE river_supervisor_periodic(
    cluster text NOT NULL,
    id text NOT NULL,
    kind text NOT NULL,
    schedule text NOT NULL,
    last_slot timestamptz,
    next_run_at timestamptz,
    last_job_id bigint,
    defined_by text,
    registered_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, id)
);

-- One row per slot decided: enqueued (with its job) or skipped. The primary key makes a slot
-- impossible to enqueue twice, whatever else fails.
CREATE TABLE river_supervisor_periodic_slot(
    cluster text NOT NULL,
    periodic_id text NOT NULL,
    slot timestamptz NOT NULL,
    outcome text NOT NULL,
    job_id bigint,
    term bigint NOT NULL,
    leader_id text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, periodic_id, slot),
    CONSTRAINT outcome_name CHECK (outcome IN ('enqueued', 'skipped_missed', 'skipped_overlap'))
);

-- The leader prunes old ledger rows in bounded batches, by slot time.
CREATE INDEX river_supervisor_periodic_slot_cluster_slot ON river_supervisor_periodic_slot (cluster, slot);

-- Each distinct drift (hash of the differing fingerprints), reported to Sentry once.
CREATE TABLE river_supervisor_drift(
    cluster text NOT NULL,
    digest text NOT NULL,
    detail jsonb NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (cluster, digest)
);
