package consulapi

import (
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/catalog"
	"github.com/hydra-net/hydra/internal/resume"
)

// A blocking query that must wait is parked: its connection is hijacked
// and kept in a set with its query and a timer, and the handler returns,
// so that net/http's two goroutines and 8 KiB of buffers per connection
// are gone while it waits (10 000 waiting queries held 220 MiB in
// net/http's handlers, under 40 MiB parked: bench/RESULTS.md). One
// dispatcher goroutine answers those a change covers; the connection then
// goes back to the http.Server through Config.Resume.

// render makes an answer's body from a snapshot at idx.
type render func(q Query, s *catalog.Snapshot, idx uint64) []byte

type parkedQuery struct {
	conn   net.Conn
	q      Query
	name   string
	render render
	timer  *time.Timer
	done   atomic.Bool
}

// parking is the parked set, by the name each query covers ("" for
// all).
type parking struct {
	mu     sync.Mutex
	byName map[string]map[*parkedQuery]struct{}
	n      int
	closed bool
	stop   chan struct{}
	once   sync.Once
}

// canPark says whether r's connection may be parked: Resume is set, an
// HTTP/1.1 GET that keeps its connection, a server that lets us hijack.
func (a *API) canPark(w http.ResponseWriter, r *http.Request) bool {
	if a.cfg.Resume == nil || r.Method != http.MethodGet || !r.ProtoAtLeast(1, 1) || r.Close {
		return false
	}
	_, ok := w.(http.Hijacker)
	return ok && a.parked.count() < a.cfg.MaxParked
}

func (p *parking) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// park hijacks r's connection and parks the query; false if the
// hijack failed (the handler then waits itself).
func (a *API) park(w http.ResponseWriter, q Query, name string, rd render) bool {
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return false
	}
	d := q.Wait + rand.N(q.Wait/16+1)
	// No read deadline while parked; the write one is set now, not in the
	// wake-up's path: an answer to a client that does not read fails
	// there (resume clears it).
	conn.SetReadDeadline(time.Time{})
	conn.SetWriteDeadline(time.Now().Add(d + 10*time.Second))
	if k := rw.Reader.Buffered(); k > 0 { // a pipelined request: keep its bytes
		b, _ := rw.Reader.Peek(k)
		conn = &resume.PrefixConn{Conn: conn, Prefix: append([]byte(nil), b...)}
	}
	pq := &parkedQuery{conn: conn, q: q, name: name, render: rd}
	a.parked.mu.Lock()
	if a.parked.closed {
		a.parked.mu.Unlock()
		a.answer(pq, true)
		return true
	}
	set := a.parked.byName[name]
	if set == nil {
		set = map[*parkedQuery]struct{}{}
		a.parked.byName[name] = set
	}
	set[pq] = struct{}{}
	a.parked.n++
	a.waiting.Add(1)
	pq.timer = time.AfterFunc(d, func() {
		if a.unpark(pq) {
			a.answer(pq, false)
		}
	})
	a.parked.mu.Unlock()
	a.parked.once.Do(func() { go a.dispatch() })
	// A change between the handler's check and the insert: answer now.
	if s, idx, ready, _ := a.ready(q, name); ready && a.unpark(pq) {
		a.answerAt(pq, s, idx, false)
	}
	return true
}

// unpark takes pq out of the set; false if something else did first.
func (a *API) unpark(pq *parkedQuery) bool {
	if !pq.done.CompareAndSwap(false, true) {
		return false
	}
	a.parked.mu.Lock()
	if set := a.parked.byName[pq.name]; set != nil {
		delete(set, pq)
		if len(set) == 0 {
			delete(a.parked.byName, pq.name)
		}
	}
	a.parked.n--
	a.parked.mu.Unlock()
	a.waiting.Add(-1)
	if pq.timer != nil {
		pq.timer.Stop()
	}
	return true
}

// dispatch answers the parked queries each change covers, until Close.
func (a *API) dispatch() {
	for {
		s := a.cat.Snapshot()
		_, _, agentCh := a.agent.state("")
		var due []*parkedQuery
		a.parked.mu.Lock()
		for name, set := range a.parked.byName {
			for pq := range set {
				if _, _, ready, _ := a.readyAt(s, pq.q, name); ready {
					due = append(due, pq)
				}
			}
		}
		a.parked.mu.Unlock()
		a.answerAll(due, s)
		select {
		case <-s.Changed(s.Index()):
		case <-agentCh:
		case <-a.parked.stop:
			return
		}
	}
}

// answerAll answers due from s, on as many goroutines as there are
// processors: the writes are what a wake-up costs.
func (a *API) answerAll(due []*parkedQuery, s *catalog.Snapshot) {
	var mine []*parkedQuery
	for _, pq := range due {
		if a.unpark(pq) {
			mine = append(mine, pq)
		}
	}
	if len(mine) == 0 {
		return
	}
	workers := min(runtime.GOMAXPROCS(0), len(mine))
	date := time.Now().UTC().AppendFormat(nil, http.TimeFormat)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every answer first, then the connections back: handing one
			// back starts a goroutine, which the last answers would wait
			// for.
			var written []net.Conn
			for i := w; i < len(mine); i += workers {
				pq := mine[i]
				_, idx, _, _ := a.readyAt(s, pq.q, pq.name)
				if a.writeParked(pq, s, idx, date, false) {
					written = append(written, pq.conn)
				}
			}
			for _, c := range written {
				a.cfg.Resume(c)
			}
		}()
	}
	wg.Wait()
}

// answer answers pq from the current snapshot; closing: with
// Connection: close (the server stops).
func (a *API) answer(pq *parkedQuery, closing bool) {
	s, idx, _, _ := a.ready(pq.q, pq.name)
	a.answerAt(pq, s, idx, closing)
}

// answerAt writes pq's answer and hands its connection back (or closes
// it).
func (a *API) answerAt(pq *parkedQuery, s *catalog.Snapshot, idx uint64, closing bool) {
	if a.writeParked(pq, s, idx, time.Now().UTC().AppendFormat(nil, http.TimeFormat), closing) {
		a.cfg.Resume(pq.conn)
	}
}

// writeParked writes pq's answer; false if the connection is done with (closed:
// an error, or closing).
func (a *API) writeParked(pq *parkedQuery, s *catalog.Snapshot, idx uint64, date []byte, closing bool) bool {
	body := pq.render(pq.q, s, idx)
	b := make([]byte, 0, 256+len(body))
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: "...)
	b = strconv.AppendUint(b, max(idx, 1), 10)
	b = append(b, "\r\nX-Consul-Knownleader: true\r\nX-Consul-Lastcontact: 0\r\nX-Consul-Effective-Consistency: leader\r\nDate: "...)
	b = append(b, date...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if closing {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	_, err := pq.conn.Write(b)
	if err != nil || closing {
		pq.conn.Close()
		return false
	}
	return true
}

// closeParked answers every parked query at once, closing their
// connections (Close: the server stops).
func (a *API) closeParked() {
	a.parked.mu.Lock()
	a.parked.closed = true
	var all []*parkedQuery
	for _, set := range a.parked.byName {
		for pq := range set {
			all = append(all, pq)
		}
	}
	a.parked.mu.Unlock()
	a.parked.once.Do(func() {}) // no dispatcher from now on
	close(a.parked.stop)
	for _, pq := range all {
		if a.unpark(pq) {
			a.answer(pq, true)
		}
	}
}
