// Command riverinterop drives River's own Go packages (River v0.51, riverpgxv5) against a database
// that river-supervisor also uses. The interop tests run it; nothing here reimplements River.
//
//	riverinterop migrate-up  --database-url URL [--schema S]   rivermigrate up, as `river migrate-up`
//	riverinterop validate    --database-url URL                rivermigrate validate, as `river validate`
//	riverinterop insert      --database-url URL                one InsertTx transaction of the test jobs
//	riverinterop work        --database-url URL --queues a,b   River's client working the interop kinds
//	riverinterop cancel      --database-url URL --job-id N     Client.JobCancel
//	riverinterop retry       --database-url URL --job-id N     Client.JobRetry
//	riverinterop bench       --database-url URL --jobs N       River's benchmark workload (see bench.go)
//
// River's CLI (`cmd/river`) is its own Go module, which the module proxy reachable here does not
// serve; its migrate-up and validate are thin wrappers over rivermigrate, which this calls the same way.
// Output is one JSON document per line on stdout; errors go to stderr with exit code 1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: riverinterop migrate-up|validate|insert|work|cancel|retry|bench [flags]")
		os.Exit(2)
	}
	commands := map[string]func(context.Context, []string) error{
		"migrate-up": migrateUp,
		"validate":   validate,
		"insert":     insert,
		"work":       work,
		"cancel":     cancel,
		"retry":      retry,
		"bench":      bench,
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "riverinterop: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "riverinterop %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// flags returns a flag set with the --database-url every command takes.
func flags(name string) (*flag.FlagSet, *string) {
	set := flag.NewFlagSet(name, flag.ExitOnError)
	url := set.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	return set, url
}

// emit prints one JSON document on its own line (the tests read stdout line by line).
func emit(doc any) {
	out, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
}

func splitList(text string) []string {
	var out []string
	for _, part := range strings.Split(text, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
