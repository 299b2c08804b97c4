package selfbench

import (
	"fmt"
	"time"
)

// configError is Validate's error: the first bad field of one of this
// package's Config structs, by its Go name, and what is wrong with it.
func configError(config, field, format string, args ...any) error {
	return fmt.Errorf("selfbench: config: %s.%s: %s", config, field, fmt.Sprintf(format, args...))
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
