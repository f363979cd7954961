-- LISTEN connections (notifier.Listener): River's channels are "<current_schema()>.<topic>".

-- name: session_schema
-- The schema a connection's unqualified names resolve to: River names its channels after it.
SELECT current_schema() AS schema;

-- name: session_listen
-- The channel is composed with psycopg.sql.Identifier: a channel name cannot be a parameter.
LISTEN {channel};
