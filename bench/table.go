package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report for people: one row per case, one column per
// implementation, then the ratios hydra/libzmq and hydra/zmq4 (of msgs/s,
// or of round trips per second for req-rep, so above 1 means hydra is
// faster), then notes on partial, failed and skipped runs.
func WriteTable(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hasHydra := slices.Contains(rep.Impls, ImplHydra)
	var ratioImpls []string
	for _, base := range []string{ImplLibzmq, ImplZMQ4} {
		if hasHydra && slices.Contains(rep.Impls, base) {
			ratioImpls = append(ratioImpls, base)
		}
	}

	header := []string{"case"}
	header = append(header, rep.Impls...)
	for _, base := range ratioImpls {
		header = append(header, "hydra/"+base)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))

	var notes []string
	for _, c := range rep.Cases {
		row := []string{c.String()}
		for _, impl := range rep.Impls {
			r, ok := rep.Lookup(impl, c)
			switch {
			case !ok:
				row = append(row, "-")
			case r.Err != nil:
				row = append(row, "FAILED")
				notes = append(notes, fmt.Sprintf("%s %s failed: %v", impl, c, r.Err))
			default:
				cell := summary(r)
				if !r.Complete {
					cell += " *"
				}
				row = append(row, cell)
				for _, w := range r.Warnings {
					notes = append(notes, fmt.Sprintf("%s %s: %s", impl, c, w))
				}
			}
		}
		hydra, hok := rep.Lookup(ImplHydra, c)
		for _, base := range ratioImpls {
			b, bok := rep.Lookup(base, c)
			if !hok || !bok || hydra.Err != nil || b.Err != nil || b.MsgsPerSec <= 0 {
				row = append(row, "-")
				continue
			}
			row = append(row, fmt.Sprintf("%.2fx", hydra.MsgsPerSec/b.MsgsPerSec))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "ratios compare msgs/s (round trips/s for req-rep): above 1x, hydra is faster; MB = 10^6 bytes")
	for _, impl := range slices.Sorted(maps.Keys(rep.Skipped)) {
		notes = append(notes, fmt.Sprintf("%s skipped: %s", impl, firstLine(rep.Skipped[impl])))
	}
	if slices.ContainsFunc(rep.Results, func(r Result) bool { return r.Err == nil && !r.Complete }) {
		notes = append(notes, "* partial: the receiver gave up waiting; the figures cover what arrived")
	}
	for _, n := range notes {
		if _, err := fmt.Fprintln(w, "note: "+n); err != nil {
			return err
		}
	}
	return nil
}

// summary formats a result's headline figures.
func summary(r Result) string {
	if r.Pattern == ReqRep {
		return fmt.Sprintf("%.1f µs rtt (%s/s)", r.RTTMicros, si(r.MsgsPerSec))
	}
	return fmt.Sprintf("%s msg/s %s MB/s", si(r.MsgsPerSec), mb(r.MBPerSec))
}

// si formats a rate with a K or M suffix.
func si(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fK", x/1e3)
	default:
		return fmt.Sprintf("%.0f", x)
	}
}

func mb(x float64) string {
	if x >= 100 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
