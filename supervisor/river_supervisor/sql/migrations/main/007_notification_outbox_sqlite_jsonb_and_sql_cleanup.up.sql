-- River main line, version 7: the notification outbox table (unused on PostgreSQL), the unused
-- client tables go, and two defaults.
CREATE TABLE river_notification(
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    topic text NOT NULL,
    payload text NOT NULL,
    CONSTRAINT topic_length CHECK (length(topic) > 0 AND length(topic) < 128)
);

CREATE INDEX river_notification_created_at_idx ON river_notification (created_at);

CREATE INDEX river_notification_topic_id_idx ON river_notification (topic, id);

DROP TABLE IF EXISTS river_client_queue;
DROP TABLE IF EXISTS river_client;

ALTER TABLE river_job ALTER COLUMN max_attempts SET DEFAULT 25;

ALTER TABLE river_queue ALTER COLUMN updated_at SET DEFAULT CURRENT_TIMESTAMP;
