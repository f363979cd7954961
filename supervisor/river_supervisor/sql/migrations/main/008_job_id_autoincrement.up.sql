-- River main line, version 8 (River v0.48.0 and later): on SQLite it rebuilds river_job with
-- AUTOINCREMENT; on PostgreSQL it is a no-op (sequences never reuse ids), recorded so that River's
-- CLI and River's migrator agree with us about the version.
SELECT 1;
