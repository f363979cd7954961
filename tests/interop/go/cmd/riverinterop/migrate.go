package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// connect opens a pgx pool; the caller closes it.
func connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, fmt.Errorf("--database-url is required")
	}
	return pgxpool.New(ctx, url)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func migrator(pool *pgxpool.Pool, schema string) (*rivermigrate.Migrator[pgx.Tx], error) {
	return rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: quietLogger()})
}

// migrateUp is `river migrate-up`: every pending main-line version, each in its own transaction.
func migrateUp(ctx context.Context, args []string) error {
	set, url := flags("migrate-up")
	schema := set.String("schema", "", "schema to migrate (default: the search path's)")
	set.Parse(args)
	pool, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrator(pool, *schema)
	if err != nil {
		return err
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{})
	if err != nil {
		return err
	}
	versions := []map[string]any{}
	for _, v := range res.Versions {
		versions = append(versions, map[string]any{"version": v.Version, "name": v.Name})
	}
	emit(map[string]any{"applied": versions})
	return nil
}

// validate is `river validate`: exit 1 when main-line migrations are outstanding.
func validate(ctx context.Context, args []string) error {
	set, url := flags("validate")
	set.Parse(args)
	pool, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrator(pool, "")
	if err != nil {
		return err
	}
	res, err := m.Validate(ctx, &rivermigrate.ValidateOpts{})
	if err != nil {
		return err
	}
	emit(map[string]any{"ok": res.OK, "messages": res.Messages})
	if !res.OK {
		return fmt.Errorf("schema not valid: %v", res.Messages)
	}
	return nil
}
