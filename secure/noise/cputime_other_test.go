//go:build !unix

package noise

import "time"

// cpuTime is not measured here: BenchmarkTunnelStream leaves out cpu-ns/B.
func cpuTime() time.Duration { return -1 }
