package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"time"
)

func main() {
	dur := flag.Duration("duration", 4*time.Second, "how long each thread watches the clock")
	minGap := flag.Duration("min", 500*time.Microsecond, "shortest gap to count")
	flag.Parse()

	type gaps struct {
		n, over1ms, over2ms int
		total, longest      time.Duration
	}
	res := make([]gaps, runtime.NumCPU())
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			g := &res[i]
			last := time.Now()
			end := last.Add(*dur)
			for last.Before(end) {
				now := time.Now()
				if d := now.Sub(last); d >= *minGap {
					g.n++
					g.total += d
					g.longest = max(g.longest, d)
					if d > time.Millisecond {
						g.over1ms++
					}
					if d > 2*time.Millisecond {
						g.over2ms++
					}
				}
				last = now
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%d threads (one per CPU) reading the clock for %v; gaps of at least %v:\n", len(res), *dur, *minGap)
	for i, g := range res {
		fmt.Printf("thread %d: %d gaps (%d over 1 ms, %d over 2 ms), %v in all, longest %v\n",
			i, g.n, g.over1ms, g.over2ms, g.total.Round(time.Microsecond), g.longest.Round(time.Microsecond))
	}
}
