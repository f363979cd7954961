-- Worker processes ready on each supervisor process and how many it runs when whole, written
-- with every heartbeat: `river-supervisor health` is healthy only when both agree. NULL: unknown
-- (a process from before this column).
ALTER TABLE river_supervisor_node ADD COLUMN IF NOT EXISTS workers integer;
ALTER TABLE river_supervisor_node ADD COLUMN IF NOT EXISTS workers_expected integer;
