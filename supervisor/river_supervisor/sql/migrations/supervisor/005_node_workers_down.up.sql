-- Worker slots whose breaker is open (their worker cannot boot and is retried on a long period by
-- the supervisor itself), written with every heartbeat: {"<slot>": "why it cannot start"}; {} when
-- every slot runs. `status` and `health` show them. NULL: unknown (a process from before this column).
ALTER TABLE river_supervisor_node ADD COLUMN IF NOT EXISTS workers_down jsonb;
