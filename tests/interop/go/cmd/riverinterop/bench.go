package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River's benchmark workload (cmd/river's `river bench --num-total-jobs N`): no-op jobs inserted
// in InsertMany batches of 5,000, then worked by River's client with the bench's fetch settings
// (FetchCooldown 2 ms, FetchPollInterval 20 ms). cmd/river is a Go module the proxy here does not
// serve, so this program runs the same workload with River's client; the clients and workers per
// client are flags (River's bench: 1 x 2,000; river-supervisor's default: 2 processes x 100).
//
// It works in a scratch schema of its own (as `river-supervisor bench` does), dropped at the end.
type BenchArgs struct {
	Num int `json:"num"`
}

func (BenchArgs) Kind() string { return "benchmark" }

type benchWorker struct{ river.WorkerDefaults[BenchArgs] }

func (benchWorker) Work(context.Context, *river.Job[BenchArgs]) error { return nil }

const benchInsertBatch = 5_000

func bench(ctx context.Context, args []string) error {
	set, url := flags("bench")
	total := set.Int("jobs", 20_000, "no-op jobs to insert, then work")
	clients := set.Int("clients", 2, "River clients working at once")
	maxWorkers := set.Int("max-workers", 100, "MaxWorkers of each client")
	set.Parse(args)

	pool, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	schema := fmt.Sprintf("rs_river_bench_%d", os.Getpid())
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return err
	}
	defer pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: quietLogger()})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{}); err != nil {
		return err
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, benchWorker{})
	newClient := func() (*river.Client[pgx.Tx], error) {
		return river.NewClient(riverpgxv5.New(pool), &river.Config{
			Schema: schema, Logger: quietLogger(), Workers: workers,
			FetchCooldown: 2 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
			Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: *maxWorkers}},
		})
	}

	inserter, err := newClient()
	if err != nil {
		return err
	}
	insertStart := time.Now()
	for done := 0; done < *total; {
		n := min(benchInsertBatch, *total-done)
		batch := make([]river.InsertManyParams, n)
		for i := range batch {
			batch[i].Args = BenchArgs{Num: done + i}
		}
		if _, err := inserter.InsertMany(ctx, batch); err != nil {
			return err
		}
		done += n
	}
	insertSeconds := time.Since(insertStart).Seconds()

	workStart := time.Now()
	var started []*river.Client[pgx.Tx]
	defer func() {
		for _, c := range started {
			stopCtx, cancelStop := context.WithTimeout(context.Background(), 10*time.Second)
			c.Stop(stopCtx)
			cancelStop()
		}
	}()
	for i := 0; i < *clients; i++ {
		c, err := newClient()
		if err != nil {
			return err
		}
		if err := c.Start(ctx); err != nil {
			return err
		}
		started = append(started, c)
	}
	if err := waitWorked(ctx, pool, schema, *total); err != nil {
		return err
	}
	wallSeconds := time.Since(workStart).Seconds()

	// Throughput from the database clock, as `river-supervisor bench` measures it: jobs over the
	// span from the first attempt to the last completion.
	var span float64
	err = pool.QueryRow(ctx, fmt.Sprintf(
		"SELECT extract(epoch FROM max(finalized_at) - min(attempted_at))::float8 FROM %s.river_job", schema,
	)).Scan(&span)
	if err != nil {
		return err
	}
	emit(map[string]any{
		"implementation": "river", "river_version": "v0.51.2", "jobs": *total,
		"clients": *clients, "max_workers": *maxWorkers,
		"insert_jobs_per_s":    float64(*total) / insertSeconds,
		"work_jobs_per_s":      float64(*total) / span,
		"work_wall_jobs_per_s": float64(*total) / wallSeconds,
	})
	return nil
}

// waitWorked polls until every job is completed (10 ms apart; the figure comes from the rows).
func waitWorked(ctx context.Context, pool *pgxpool.Pool, schema string, total int) error {
	deadline := time.Now().Add(10 * time.Minute)
	query := fmt.Sprintf("SELECT count(*) FROM %s.river_job WHERE state = 'completed'", schema)
	for time.Now().Before(deadline) {
		var done int
		if err := pool.QueryRow(ctx, query).Scan(&done); err != nil {
			return err
		}
		if done >= total {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("jobs not all worked within 10 minutes")
}
