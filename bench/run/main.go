package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/hydra-net/hydra/bench"
)

func main() {
	var (
		impls    = flag.String("impls", "hydra,zmq4,libzmq", "comma-separated implementations to compare")
		sizes    = flag.String("sizes", "16,256,4096,65536", "comma-separated push-pull message sizes in bytes")
		rrSize   = flag.Int("rr-size", 64, "req-rep message size in bytes; -1 leaves req-rep out")
		duration = flag.Duration("duration", 2*time.Second, "target time per case and implementation (calibrated by a short probe); 0 uses fixed counts")
		scale    = flag.Float64("count", 1, "multiply every message count by this")
		quick    = flag.Bool("quick", false, "small counts and short timeouts, for CI (no calibration)")
		jsonOnly = flag.Bool("json-only", false, "print only the JSON lines on stdout, no table")
		timeout  = flag.Duration("timeout", 0, "kill a peer process after this long (default 60s, 30s with -quick)")
		reqLib   = flag.Bool("require-libzmq", false, "fail, rather than skip libzmq, when gcc or libzmq is missing")
		peer     = flag.String("peer", "", "use this prebuilt bench/peer binary instead of building one")
		quiet    = flag.Bool("q", false, "no progress on stderr")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/run [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	cfg := bench.Config{
		Impls:         splitList(*impls),
		ReqRepSize:    *rrSize,
		Duration:      *duration,
		Scale:         *scale,
		Quick:         *quick,
		Timeout:       *timeout,
		RequireLibzmq: *reqLib,
		PeerBin:       *peer,
	}
	if *duration == 0 {
		cfg.Duration = -1 // fixed counts
	}
	if *rrSize == 0 {
		fail(fmt.Errorf("-rr-size 0: use a positive size, or -1 to leave req-rep out"))
	}
	for _, s := range splitList(*sizes) {
		n, err := strconv.Atoi(s)
		if err != nil {
			fail(fmt.Errorf("-sizes: %v", err))
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if !*quiet {
		cfg.Logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.Run(ctx, cfg, os.Stdout)
	if err != nil {
		fail(err)
	}
	if !*jsonOnly {
		fmt.Println()
		if err := bench.WriteTable(os.Stdout, rep); err != nil {
			fail(err)
		}
	}
	if rep.Failed() {
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
