package selfbench

import (
	"fmt"
	"time"
)

// ConfigError is a bad field of one of this package's Config structs. Field
// is the Go field name, so that a command line can name its own flag
// instead.
type ConfigError struct {
	Config  string // the struct: ZMTPConfig, RegistryConfig, ...
	Field   string // the field: Size, Concurrency, ...
	Problem string // what is wrong with its value
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("selfbench: %s.%s: %s", e.Config, e.Field, e.Problem)
}

func configError(config, field, format string, args ...any) error {
	return &ConfigError{Config: config, Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Limits of the bench parameters, shared by every bench.
const (
	MaxSize        = 64 << 20
	MaxConcurrency = 1024
	MaxPipeline    = 256
	// maxCount bounds Count: a budget that never runs out is a Duration.
	maxCount = 1 << 40
)

// Defaults shared by every bench.
const (
	DefaultSize        = 256
	DefaultDuration    = 2 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 1
)
