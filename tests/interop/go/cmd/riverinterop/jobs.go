package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// The job kinds both sides can run (river-supervisor's side: tests/interop/interopjobs), each
// behaving the same way in Go and in Python, plus two that only River's side has.
type (
	EchoArgs     map[string]any // completes; records {"echo": args, "attempt": n} as its output
	FailArgs     map[string]any // returns an error: args["message"]
	HandoffArgs  map[string]any // fails on the side named by args["fail_on"] ("go" or "python")
	SleepArgs    map[string]any // sleeps args["seconds"], ending early with ctx's error on a cancel
	GoOnlyArgs   map[string]any // only River's side has this kind; completes like echo
	PeriodicArgs map[string]any // River's own periodic job, only River's side has it
)

func (EchoArgs) Kind() string     { return "interop.echo" }
func (FailArgs) Kind() string     { return "interop.fail" }
func (HandoffArgs) Kind() string  { return "interop.handoff" }
func (SleepArgs) Kind() string    { return "interop.sleep" }
func (GoOnlyArgs) Kind() string   { return "interop.go_only" }
func (PeriodicArgs) Kind() string { return "interop.go_periodic" }

type echoWorker struct{ river.WorkerDefaults[EchoArgs] }

func (echoWorker) Work(ctx context.Context, job *river.Job[EchoArgs]) error {
	return river.RecordOutput(ctx, map[string]any{"echo": map[string]any(job.Args), "attempt": job.Attempt})
}

type failWorker struct{ river.WorkerDefaults[FailArgs] }

func (failWorker) Work(ctx context.Context, job *river.Job[FailArgs]) error {
	return fmt.Errorf("%v", job.Args["message"])
}

type handoffWorker struct {
	river.WorkerDefaults[HandoffArgs]
	retryIn time.Duration
}

func (handoffWorker) Work(ctx context.Context, job *river.Job[HandoffArgs]) error {
	if job.Args["fail_on"] == "go" {
		return errors.New("failed on go")
	}
	return river.RecordOutput(ctx, map[string]any{"finished_on": "go", "attempt": job.Attempt})
}

// NextRetry: with --retry-in, a failed attempt waits that long (River's own policy otherwise), so
// a test can stop this side before it would retry and let the other side finish the job.
func (w handoffWorker) NextRetry(job *river.Job[HandoffArgs]) time.Time {
	if w.retryIn > 0 {
		return time.Now().Add(w.retryIn)
	}
	return time.Time{}
}

type sleepWorker struct{ river.WorkerDefaults[SleepArgs] }

func (sleepWorker) Work(ctx context.Context, job *river.Job[SleepArgs]) error {
	seconds, _ := job.Args["seconds"].(float64)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(seconds * float64(time.Second))):
		return nil
	}
}

// Timeout: none, so a long sleep ends only by a cancel (River's default would stop it at 1 min).
func (sleepWorker) Timeout(*river.Job[SleepArgs]) time.Duration { return -1 }

type goOnlyWorker struct{ river.WorkerDefaults[GoOnlyArgs] }

func (goOnlyWorker) Work(ctx context.Context, job *river.Job[GoOnlyArgs]) error {
	return river.RecordOutput(ctx, map[string]any{"echo": map[string]any(job.Args), "attempt": job.Attempt})
}

type periodicWorker struct{ river.WorkerDefaults[PeriodicArgs] }

func (periodicWorker) Work(context.Context, *river.Job[PeriodicArgs]) error { return nil }

// dynamicArgs inserts a job of any kind with any args (the tests describe the jobs in JSON).
type dynamicArgs struct {
	kind string
	args json.RawMessage
}

func (a dynamicArgs) Kind() string                 { return a.kind }
func (a dynamicArgs) MarshalJSON() ([]byte, error) { return a.args, nil }

// jobSpec is one job of `insert`'s input, a JSON list on stdin.
type jobSpec struct {
	Kind         string          `json:"kind"`
	Args         json.RawMessage `json:"args"`
	Queue        string          `json:"queue"`
	Priority     int             `json:"priority"`
	MaxAttempts  int             `json:"max_attempts"`
	ScheduledIn  float64         `json:"scheduled_in"` // seconds from now
	Tags         []string        `json:"tags"`
	Metadata     json.RawMessage `json:"metadata"`
	UniqueByArgs bool            `json:"unique_by_args"`
}

// insertOnlyClient is a client without workers or queues: it inserts, cancels and retries.
func insertOnlyClient(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quietLogger()})
}

// insert reads job specs (JSON list) on stdin and inserts them all with InsertTx in one transaction.
func insert(ctx context.Context, args []string) error {
	set, url := flags("insert")
	set.Parse(args)
	var specs []jobSpec
	if err := json.NewDecoder(os.Stdin).Decode(&specs); err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	pool, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := insertOnlyClient(pool)
	if err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	results := []map[string]any{}
	for _, spec := range specs {
		opts := &river.InsertOpts{
			Queue: spec.Queue, Priority: spec.Priority, MaxAttempts: spec.MaxAttempts,
			Tags: spec.Tags, Metadata: spec.Metadata,
			UniqueOpts: river.UniqueOpts{ByArgs: spec.UniqueByArgs},
		}
		if spec.ScheduledIn > 0 {
			opts.ScheduledAt = time.Now().Add(time.Duration(spec.ScheduledIn * float64(time.Second)))
		}
		if len(spec.Args) == 0 {
			spec.Args = json.RawMessage("{}")
		}
		res, err := client.InsertTx(ctx, tx, dynamicArgs{spec.Kind, spec.Args}, opts)
		if err != nil {
			return fmt.Errorf("insert %s: %w", spec.Kind, err)
		}
		results = append(results, map[string]any{"id": res.Job.ID, "skipped": res.UniqueSkippedAsDuplicate})
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	emit(map[string]any{"inserted": results})
	return nil
}

// work runs River's client on the given queues with the interop workers until SIGTERM/SIGINT,
// printing each finished job as a JSON line.
func work(ctx context.Context, args []string) error {
	set, url := flags("work")
	queues := set.String("queues", "default", "comma-separated queues to work")
	id := set.String("id", "", "client ID (River's default when empty)")
	onlyKnown := set.Bool("fetch-only-known", true, "River's FetchOnlyKnownKinds")
	periodic := set.Duration("periodic-every", 0, "add River's own periodic job interop.go_periodic (into the first queue)")
	retryIn := set.Duration("handoff-retry-in", 0, "retry a failed interop.handoff after this long")
	poll := set.Duration("poll", time.Second, "River's FetchPollInterval")
	set.Parse(args)

	pool, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()

	workers := river.NewWorkers()
	river.AddWorker(workers, echoWorker{})
	river.AddWorker(workers, failWorker{})
	river.AddWorker(workers, handoffWorker{retryIn: *retryIn})
	river.AddWorker(workers, sleepWorker{})
	river.AddWorker(workers, goOnlyWorker{})
	river.AddWorker(workers, periodicWorker{})

	names := splitList(*queues)
	config := &river.Config{
		ID: *id, Logger: quietLogger(), Workers: workers, FetchOnlyKnownKinds: *onlyKnown,
		FetchPollInterval: *poll, Queues: map[string]river.QueueConfig{},
	}
	for _, name := range names {
		config.Queues[name] = river.QueueConfig{MaxWorkers: 10}
	}
	if *periodic > 0 {
		config.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(
			river.PeriodicInterval(*periodic),
			func() (river.JobArgs, *river.InsertOpts) {
				return PeriodicArgs{}, &river.InsertOpts{Queue: names[0]}
			},
			&river.PeriodicJobOpts{ID: "interop-go-periodic", RunOnStart: true},
		)}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), config)
	if err != nil {
		return err
	}
	events, stopEvents := client.Subscribe(
		river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled, river.EventKindJobSnoozed,
	)
	defer stopEvents()
	if err := client.Start(ctx); err != nil {
		return err
	}
	emit(map[string]any{"started": true, "client_id": client.ID(), "queues": names})

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	for {
		select {
		case event := <-events:
			if event == nil {
				continue
			}
			emit(map[string]any{
				"event": string(event.Kind), "id": event.Job.ID, "kind": event.Job.Kind,
				"state": string(event.Job.State), "attempt": event.Job.Attempt, "queue": event.Job.Queue,
			})
		case <-signals:
			stopCtx, cancelStop := context.WithTimeout(ctx, 10*time.Second)
			defer cancelStop()
			err := client.Stop(stopCtx)
			emit(map[string]any{"stopped": true})
			return err
		}
	}
}

func jobAction(name string, act func(*river.Client[pgx.Tx], context.Context, int64) (*rivertype.JobRow, error)) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		set, url := flags(name)
		jobID := set.Int64("job-id", 0, "the job")
		set.Parse(args)
		pool, err := connect(ctx, *url)
		if err != nil {
			return err
		}
		defer pool.Close()
		client, err := insertOnlyClient(pool)
		if err != nil {
			return err
		}
		row, err := act(client, ctx, *jobID)
		if err != nil {
			return err
		}
		emit(map[string]any{"id": row.ID, "state": string(row.State), "attempt": row.Attempt})
		return nil
	}
}

var (
	cancel = jobAction("cancel", (*river.Client[pgx.Tx]).JobCancel)
	retry  = jobAction("retry", (*river.Client[pgx.Tx]).JobRetry)
)
