package selfbench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// The benches: what `hydra-server bench KIND` runs.
const (
	KindZMTP     = "zmtp"
	KindRegistry = "registry"
	KindTunnel   = "tunnel"
)

// Latency is a latency distribution: zmtp round trips (req-rep), one-way
// send-to-receive times (push-pull, pub-sub, from a send time stamped in
// each message), or registry request-to-reply times.
type Latency struct {
	Samples            int64
	P50, P90, P99, Max time.Duration
}

// MarshalJSON writes the figures in microseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Samples int64   `json:"samples"`
		P50     float64 `json:"p50_us"`
		P90     float64 `json:"p90_us"`
		P99     float64 `json:"p99_us"`
		Max     float64 `json:"max_us"`
	}{l.Samples, micros(l.P50), micros(l.P90), micros(l.P99), micros(l.Max)})
}

func micros(d time.Duration) float64 { return round3(float64(d) / 1e3) }

// round3 keeps three decimals, which is all a rate or a latency in µs needs.
func round3(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*1000) / 1000
}

// Result is one measured case.
type Result struct {
	Bench string // KindZMTP, KindRegistry, KindTunnel
	// Case is the zmtp pattern (push-pull, req-rep, pub-sub) or the
	// registry operation (lookup, register).
	Case string
	// Target is the endpoint measured; InProcess when the bench started
	// its own server.
	Target string
	// Size is the message size in bytes (zmtp); 0 for the registry, whose
	// requests are small JSON bodies.
	Size int
	// Concurrency is the number of sockets or clients sending at once:
	// PUSH or REQ sockets, SUB sockets for pub-sub, registry clients.
	Concurrency int
	// Pipeline is the number of requests each registry client keeps in
	// flight.
	Pipeline int
	// Count is what was measured: messages received (push-pull, pub-sub,
	// summed over subscribers), round trips (req-rep), replies (registry).
	Count int64
	// Expected is what should have arrived: messages sent (push-pull),
	// messages sent times subscribers (pub-sub). Lost is Expected - Count
	// when positive: pub-sub drops at the high-water mark, as ZeroMQ does.
	Expected, Lost int64
	// Errors counts error replies (registry) and malformed messages.
	Errors int64
	// Elapsed is the measuring time: from the first message received to
	// the last (push-pull, pub-sub), from the start to the last reply
	// (req-rep; registry: from the end of Warmup).
	Elapsed time.Duration
	// Warmup is how long the load ran before the measurement (registry).
	Warmup time.Duration
	// MsgsPerSec is Count over Elapsed (for push-pull and pub-sub, the
	// intervals after the first message); MBPerSec is that times Size, in
	// 10^6 bytes per second (one way).
	MsgsPerSec, MBPerSec float64
	// Latency is nil when not measured (one-way latency needs messages of
	// at least 8 bytes to carry the send time).
	Latency *Latency
	// ClockError bounds the error of one-way latencies measured against
	// a --target (push-pull, pub-sub): the two clocks are aligned over the
	// control connection to within half its round trip. Zero in process.
	ClockError time.Duration
	// Notes explain anything unusual: partial runs, drops, clock offsets.
	Notes []string
}

// InProcess is Result.Target when the bench started its own server.
const InProcess = "in-process"

// MarshalJSON writes the result with rates rounded and durations in
// seconds or microseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Bench       string   `json:"bench"`
		Case        string   `json:"case"`
		Target      string   `json:"target"`
		Size        int      `json:"size,omitempty"`
		Concurrency int      `json:"concurrency"`
		Pipeline    int      `json:"pipeline,omitempty"`
		Count       int64    `json:"count"`
		Expected    int64    `json:"expected,omitempty"`
		Lost        int64    `json:"lost,omitempty"`
		Errors      int64    `json:"errors,omitempty"`
		Seconds     float64  `json:"seconds"`
		Warmup      float64  `json:"warmup_seconds,omitempty"`
		MsgsPerSec  float64  `json:"msgs_per_sec"`
		MBPerSec    float64  `json:"mb_per_sec,omitempty"`
		Latency     *Latency `json:"latency,omitempty"`
		ClockError  float64  `json:"clock_error_us,omitempty"`
		Notes       []string `json:"notes,omitempty"`
	}{r.Bench, r.Case, r.Target, r.Size, r.Concurrency, r.Pipeline, r.Count, r.Expected, r.Lost, r.Errors,
		math.Round(r.Elapsed.Seconds()*1e6) / 1e6, r.Warmup.Seconds(), round3(r.MsgsPerSec), round3(r.MBPerSec), r.Latency, micros(r.ClockError), r.Notes})
}

// Skip is a bench that did not run, and why.
type Skip struct {
	Bench  string `json:"bench"`
	Reason string `json:"reason"`
}

// Report is a whole `hydra-server bench` run.
type Report struct {
	Version string    `json:"version"` // hydra-server's --version line
	OS      string    `json:"os"`
	Arch    string    `json:"arch"`
	CPUs    int       `json:"cpus"` // GOMAXPROCS
	Started time.Time `json:"started"`
	Results []Result  `json:"results"`
	Skipped []Skip    `json:"skipped,omitempty"`
	Failed  []Skip    `json:"failed,omitempty"`
}

// WriteTable prints the report for people: one row per result, then the
// notes and the skipped benches.
func WriteTable(w io.Writer, rep *Report) error {
	// Names align left, figures right: the name columns are padded here.
	wb, wc := len("bench"), len("case")
	for _, r := range rep.Results {
		wb, wc = max(wb, len(r.Bench)), max(wc, len(r.Case))
	}
	left := func(b, c string) string { return fmt.Sprintf("%-*s  %-*s", wb, b, wc, c) }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tsize\tconc\tcount\ttime\tmsgs/s\tMB/s\tp50\tp90\tp99\tmax\t\n", left("bench", "case"))
	var notes []string
	seen := map[string]bool{}
	note := func(n string) { // each note once: the cases of a bench share theirs
		if !seen[n] {
			seen[n] = true
			notes = append(notes, n)
		}
	}
	kinds := map[string]bool{}
	var clockError time.Duration
	for _, r := range rep.Results {
		kinds[r.Bench] = true
		if r.Latency != nil {
			clockError = max(clockError, r.ClockError)
		}
		size, mb := "-", "-"
		if r.Bench == KindZMTP || r.Bench == KindTunnel {
			size = FormatBytes(r.Size)
			mb = fmt.Sprintf("%.1f", r.MBPerSec)
		}
		conc := fmt.Sprint(r.Concurrency)
		if r.Pipeline > 1 {
			conc += fmt.Sprintf("×%d", r.Pipeline)
		}
		lat := []string{"-", "-", "-", "-"}
		if l := r.Latency; l != nil {
			lat = []string{FormatDuration(l.P50), FormatDuration(l.P90), FormatDuration(l.P99), FormatDuration(l.Max)}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", left(r.Bench, r.Case), size, conc, FormatCount(float64(r.Count)),
			FormatDuration(r.Elapsed), FormatCount(r.MsgsPerSec), mb, strings.Join(lat, "\t"))
		for _, n := range r.Notes {
			note(fmt.Sprintf("%s %s: %s", r.Bench, r.Case, n))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range rep.Skipped {
		note(fmt.Sprintf("%s: skipped: %s", s.Bench, s.Reason))
	}
	for _, s := range rep.Failed {
		note(fmt.Sprintf("%s: FAILED: %s", s.Bench, s.Reason))
	}
	if clockError > 0 {
		notes = append(notes, fmt.Sprintf("one-way latencies against the target: the two clocks aligned to within ±%s", FormatDuration(clockError)))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	var legend []string
	for _, l := range latencyLegend {
		if kinds[l.bench] {
			legend = append(legend, l.text)
		}
	}
	footer := fmt.Sprintf("%s, %d CPUs", rep.Version, rep.CPUs)
	if len(legend) > 0 {
		footer += "; latency: " + strings.Join(legend, ", ")
	}
	_, err := fmt.Fprintf(w, "\n%s\n", footer)
	return err
}

// latencyLegend says what latency means, for the benches in a report.
var latencyLegend = []struct{ bench, text string }{
	{KindZMTP, "req-rep round trip, push-pull/pub-sub send to receive"},
	{KindRegistry, "registry request to reply"},
	{KindTunnel, fmt.Sprintf("tunnel %d-byte echo round trip", echoSize)},
}

// FormatCount writes n with a K/M/G suffix and three significant digits.
func FormatCount(n float64) string {
	// A value that rounds up to 1000 of one unit is written in the next.
	switch {
	case n >= 999.5e6:
		return trimFloat(n/1e9) + "G"
	case n >= 999.5e3:
		return trimFloat(n/1e6) + "M"
	case n >= 1e4:
		return trimFloat(n/1e3) + "K"
	}
	return fmt.Sprintf("%.0f", n)
}

func trimFloat(f float64) string {
	switch {
	case f >= 99.95:
		return fmt.Sprintf("%.0f", f)
	case f >= 9.995:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.2f", f)
}

// FormatDuration writes d with three significant digits: 83.5µs, 1.21ms, 2.00s.
func FormatDuration(d time.Duration) string {
	switch {
	case d >= 999_500*time.Microsecond:
		return trimFloat(d.Seconds()) + "s"
	case d >= 999_500*time.Nanosecond:
		return trimFloat(float64(d)/1e6) + "ms"
	case d >= time.Microsecond:
		return trimFloat(float64(d)/1e3) + "µs"
	}
	return fmt.Sprintf("%dns", d)
}

// FormatBytes writes a message size: 16 B, 4 KiB, 1.5 KiB.
func FormatBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
