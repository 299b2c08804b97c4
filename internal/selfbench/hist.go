package selfbench

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: 2^histSubBits buckets per
// power of two, so a bucket is at most 1/32 of its values wide and the
// midpoint reported is within 1.6% of any value in it.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	// histMaxShift caps the range at about 2^(histMaxShift+histSubBits+1)
	// ns (about 73 minutes); longer values land in the last bucket, and
	// Max still reports them exactly.
	histMaxShift = 35
	histBuckets  = (histMaxShift + 2) * histSub
)

// Histogram records durations (latencies) in log-linear buckets: exact
// below 64 ns, then 64 buckets per power of two. Its memory is fixed
// (histBuckets counters, about 19 KiB) however many values it records. It
// is not safe for concurrent use: give each goroutine its own and Merge
// them.
type Histogram struct {
	counts   []uint64
	n        int64
	min, max time.Duration
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{counts: make([]uint64, histBuckets)} }

func bucketOf(v int64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1 // v>>shift in [64, 127]
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// bucketBounds returns the smallest value of bucket i and the first value
// past it.
func bucketBounds(i int) (lo, hi int64) {
	if i < histSub {
		return int64(i), int64(i) + 1
	}
	shift := i/histSub - 1
	m := int64(i%histSub + histSub)
	return m << shift, (m + 1) << shift
}

// Record adds one value; negative values count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(int64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// Count returns the number of values recorded.
func (h *Histogram) Count() int64 { return h.n }

// Max returns the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the value at quantile q (0.5 for the median): the
// midpoint of the bucket holding the ceil(q·n)-th smallest value, kept
// within the exact minimum and maximum. Zero when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(q*float64(h.n) + 0.999999999)
	rank = min(max(rank, 1), h.n)
	var seen int64
	for i, c := range h.counts {
		seen += int64(c)
		if seen >= rank {
			if i == histBuckets-1 {
				return h.max // the overflow bucket
			}
			lo, hi := bucketBounds(i)
			mid := time.Duration(lo + (hi-lo-1)/2)
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

// Latency summarises the histogram.
func (h *Histogram) Latency() *Latency {
	if h.n == 0 {
		return nil
	}
	return &Latency{Samples: h.n, P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99), Max: h.max}
}
