-- Migration bookkeeping: River's river_migration table, keyed by (line, version) from version 5.

-- name: migration_lock
-- Serialises concurrent migrators (several hosts at once) for the whole session.
SELECT pg_advisory_lock(hashtext('river_supervisor.migrate'));

-- name: migration_unlock
-- Releases migration_lock (session level; also released when the session ends).
SELECT pg_advisory_unlock(hashtext('river_supervisor.migrate'));

-- name: migration_table_columns
-- Which shape river_migration has here: none (fresh), pre-5 (no line column) or lined.
SELECT attname AS column_name
  FROM pg_attribute
 WHERE attrelid = to_regclass('river_migration') AND attnum > 0 AND NOT attisdropped;

-- name: migration_versions_by_line
-- Versions applied on one line (version 5 and later). No locks: migration_lock serialises.
SELECT version FROM river_migration WHERE line = %(line)s ORDER BY version;

-- name: migration_versions_unlined
-- Versions applied before River's version 5 added lines (all of them are main). No locks.
SELECT version FROM river_migration ORDER BY version;

-- name: migration_record_by_line
-- Records one applied version, in the migration's own transaction (row lock on the new row).
INSERT INTO river_migration (line, version) VALUES (%(line)s, %(version)s);

-- name: migration_record_unlined
-- The same before version 5 (no line column yet).
INSERT INTO river_migration (version) VALUES (%(version)s);
