-- Migration bookkeeping: River's river_migration table, keyed by (line, version) from version 5.

-- name: migration_lock
-- Serialises concurrent migrators (several hosts at once) for the whole session.
SELECT pg_advisory_lock(hashtext('river_supervisor.migrate'));

-- name: migration_unlock
SELECT pg_advisory_unlock(hashtext('river_supervisor.migrate'));

-- name: migration_table_columns
-- Which shape river_migration has here: none (fresh), pre-5 (no line column) or lined.
SELECT attname AS column_name
  FROM pg_attribute
 WHERE attrelid = to_regclass('river_migration') AND attnum > 0 AND NOT attisdropped;

-- name: migration_versions_by_line
SELECT version FROM river_migration WHERE line = %(line)s ORDER BY version;

-- name: migration_versions_unlined
SELECT version FROM river_migration ORDER BY version;

-- name: migration_record_by_line
INSERT INTO river_migration (line, version) VALUES (%(line)s, %(version)s);

-- name: migration_record_unlined
INSERT INTO river_migration (version) VALUES (%(version)s);
