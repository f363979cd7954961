-- river-supervisor bench: a scratch schema of its own, and what it reads back from it.
-- The schema statements take the schema as {schema}, composed with psycopg.sql.Identifier (DDL
-- takes no parameters); the others run with search_path set to that schema.

-- name: bench_schema_create
-- A scratch schema the bench migrates and works in; nothing outside it is read or written.
CREATE SCHEMA {schema};

-- name: bench_schema_drop
-- Drops the scratch schema and every job, table and function in it. Takes ACCESS EXCLUSIVE locks
-- on its tables only, after the bench's supervisor has exited.
DROP SCHEMA IF EXISTS {schema} CASCADE;

-- name: bench_server_info
-- The server's version and the schema this session works in.
SELECT current_setting('server_version') AS server_version, current_schema() AS schema;

-- name: bench_last_job_id
-- The highest job id so far (0 on an empty table): jobs inserted next have greater ids.
SELECT coalesce(max(id), 0) AS id FROM river_job;

-- name: bench_unfinished
-- Whether any job with an id in (after, until] is not finalized yet: served by the fetching index
-- (state leads it), so polling it costs next to nothing while the workers drain the queue.
SELECT EXISTS (
    SELECT 1
      FROM river_job
     WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending')
       AND id > %(after)s AND id <= %(until)s
) AS busy;

-- name: bench_span
-- Jobs with an id in (after, until]: how many ended in each state, which workers ran them, and the
-- span from the first start to the last finalization (database clock). now() is the transaction's
-- start, so distinct attempted_at values count fetch statements and distinct finalized_at values
-- count completion batches (a lower bound, should two transactions start in the same microsecond).
SELECT count(*) AS jobs,
       count(*) FILTER (WHERE state = 'completed') AS completed,
       count(DISTINCT attempted_by[array_upper(attempted_by, 1)]) AS workers,
       count(DISTINCT attempted_at) AS fetches,
       count(DISTINCT finalized_at) AS completions,
       extract(epoch FROM max(finalized_at) - min(attempted_at))::float8 AS seconds
  FROM river_job
 WHERE id > %(after)s AND id <= %(until)s;

-- name: bench_latencies
-- Enqueue-to-start of the jobs with an id in (after, until], in milliseconds, both ends read from
-- the database clock (created_at: the inserting transaction; attempted_at: the fetching one).
SELECT extract(epoch FROM attempted_at - created_at)::float8 * 1000 AS ms
  FROM river_job
 WHERE id > %(after)s AND id <= %(until)s AND attempted_at IS NOT NULL
 ORDER BY id;
