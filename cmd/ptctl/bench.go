package main

import (
	"context"
	"io"
)

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usageErr("bench: not built yet (see the benchmark issue); the engine benchmark is `go test -bench . ./batch/`")
}
