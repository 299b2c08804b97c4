package bench

// Message counts. A full run aims at Config.Duration per case and
// implementation: it first runs the case with the quick count as a probe,
// then scales the count to the measured rate, within [quick, max]. With
// calibration off (Duration 0) it uses the fixed count instead. Counts for
// push-pull follow the bytes moved, so that any -sizes value gets a sensible
// count. zmq4 gets lower caps, since it is much slower on small messages
// (see bench/RESULTS.md): they keep each of its cases to a few seconds.

// countLimits are the counts for one implementation and case.
type countLimits struct {
	quick int64 // -quick, and the calibration probe
	max   int64 // the most a calibrated run uses
	fixed int64 // the count when calibration is off
}

// Round trips for req-rep, whose round trip time is about the same for every
// implementation.
var (
	reqRepLimits     = countLimits{quick: 1000, max: 100_000, fixed: 20_000}
	reqRepLimitsZMQ4 = countLimits{quick: 1000, max: 50_000, fixed: 20_000}
)

func limitsFor(impl string, c Case) countLimits {
	if c.Pattern == ReqRep {
		if impl == ImplZMQ4 {
			return reqRepLimitsZMQ4
		}
		return reqRepLimits
	}
	size := int64(max(c.Size, 1))
	byBytes := func(total, lo, hi int64) int64 { return min(max(total/size, lo), hi) }
	if impl == ImplZMQ4 {
		return countLimits{
			quick: byBytes(32<<20, 20, 20_000),
			max:   byBytes(2<<30, 20, 500_000),
			fixed: byBytes(512<<20, 20, 200_000),
		}
	}
	l := countLimits{
		quick: byBytes(128<<20, 20, 100_000),
		max:   byBytes(8<<30, 20, 20_000_000),
		fixed: byBytes(2<<30, 20, 5_000_000),
	}
	if impl == ImplHydra {
		// Until hydra is calibrated against libzmq, do not bet on its speed.
		l.fixed = min(l.fixed, 2_000_000)
	}
	return l
}

// HWM is the high-water mark, in messages, that every implementation gets on
// both sockets for messages of size bytes: 100000, but no more than 32 MiB of
// payload per queue (and no fewer than 1000 messages). Deep queues of large
// messages only add memory traffic; libzmq itself slows down with them.
func HWM(size int) int {
	const maxMsgs, maxBytes, minMsgs = 100_000, 32 << 20, 1000
	return min(max(maxBytes/max(size, 1), minMsgs), maxMsgs)
}
