package selfbench

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
)

// TestLoadTestInProcess runs a tiny load test against a registry server in
// this process: it passes, and every phase did something.
func TestLoadTestInProcess(t *testing.T) {
	base := runtime.NumGoroutine()
	srv, err := registry.NewServer(registry.Config{MinTTL: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	defer func() { srv.Close(); <-done; testutil.CheckGoroutines(t, base) }()

	rep, err := LoadTest(testutil.Context(t, time.Minute), LoadConfig{
		Endpoint: srv.Endpoint(), Services: 100, Registrars: 4, Lookupers: 4, Churners: 2,
		Duration: 300 * time.Millisecond, TTL: 3 * time.Second, ChurnTTL: 200 * time.Millisecond,
		ChurnPause: 10 * time.Millisecond, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if !rep.Passed() {
		t.Fatalf("load test failed: %s", rep.FirstError)
	}
	if rep.Services != 100 || rep.Lookups == 0 || rep.ChurnRegistered == 0 || rep.ChurnExpired == 0 {
		t.Errorf("nothing happened: %s", rep)
	}
	if !(0 < rep.P50 && rep.P50 <= rep.P99 && rep.P99 <= rep.Max) {
		t.Errorf("lookup latency p50 %v p99 %v max %v", rep.P50, rep.P99, rep.Max)
	}
}

// TestValidateNamesTheField: every Config reports its first bad field by
// its Go name.
func TestValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		err           error
		config, field string
	}{
		{ZMTPConfig{Pattern: "ring"}.Validate(), "ZMTPConfig", "Pattern"},
		{ZMTPConfig{Size: MaxSize + 1}.Validate(), "ZMTPConfig", "Size"},
		{ZMTPConfig{Rate: -1}.Validate(), "ZMTPConfig", "Rate"},
		{RegistryConfig{Op: "delete"}.Validate(), "RegistryConfig", "Op"},
		{RegistryConfig{Pipeline: MaxPipeline + 1}.Validate(), "RegistryConfig", "Pipeline"},
		{RegistryConfig{Warmup: -1}.Validate(), "RegistryConfig", "Warmup"},
		{TunnelConfig{Concurrency: -1}.Validate(), "TunnelConfig", "Concurrency"},
		{ResponderConfig{Endpoint: "udp://x:1"}.Validate(), "ResponderConfig", "Endpoint"},
		{LoadConfig{ChurnTTL: -1}.Validate(), "LoadConfig", "ChurnTTL"},
	} {
		if c.err == nil || !strings.HasPrefix(c.err.Error(), "selfbench: config: "+c.config+"."+c.field+": ") {
			t.Errorf("%v: want a ConfigError for %s.%s", c.err, c.config, c.field)
		}
	}
	for _, err := range []error{ZMTPConfig{}.Validate(), RegistryConfig{}.Validate(), TunnelConfig{}.Validate(),
		ResponderConfig{}.Validate(), LoadConfig{}.Validate()} {
		if err != nil {
			t.Errorf("zero Config: %v", err)
		}
	}
	if err := (TunnelConfig{Target: "tcp://far:8420"}).Validate(); !errors.Is(err, ErrTunnelTarget) {
		t.Errorf("tunnel target: %v", err)
	}
}
