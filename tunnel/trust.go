package tunnel

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hydra-net/hydra/mux"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/secure/noise"
)

// Reasons a responder gives in Refused.
const (
	reasonUnknownKey = "key not on the allow-list"
	reasonRevoked    = "key removed from the allow-list"
)

// msgRefusedKey is logged once per refused key (repeatlog).
const msgRefusedKey = "tunnel: refused a key not on the allow-list"

// farewellWait bounds how long a side that ends a session (Bye, Refused)
// waits for the peer to read it and close, before closing itself.
const farewellWait = 300 * time.Millisecond

// RefusedError is a tunnel the remote refused after the handshake: it
// does not allow this server's key (Refused).
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "tunnel: refused by the remote: " + e.Reason }

// errBye is a session the peer ended with Bye.
var errBye = errors.New("tunnel: the peer shut down")

// ctlWriter serializes the writes to one session's control stream: the
// control writer's, and a farewell from Run's end or Recheck. Until set
// (no control stream yet) writes fail.
type ctlWriter struct {
	mu sync.Mutex
	c  net.Conn
}

func (w *ctlWriter) set(c net.Conn) {
	w.mu.Lock()
	w.c = c
	w.mu.Unlock()
}

func (w *ctlWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.c == nil {
		return 0, errDown
	}
	return w.c.Write(b)
}

// send writes m within d.
func (w *ctlWriter) send(m Message, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.c == nil {
		return errDown
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(d))
	defer w.c.SetWriteDeadline(time.Time{})
	_, err := w.c.Write(m.Append(nil))
	return err
}

// farewell sends m as the session's last message and waits (briefly) for
// the peer to close, so that m is read before the link goes.
func farewell(sess *mux.Session, w *ctlWriter, m Message) {
	if w.send(m, farewellWait) != nil {
		return
	}
	tm := time.NewTimer(farewellWait)
	defer tm.Stop()
	select {
	case <-sess.Done():
	case <-tm.C:
	}
}

// refuse serves the link of a key Allow refuses: it answers the control
// stream with Refused and nothing else (no stream reaches a service), and
// closes, all within a few seconds.
func (t *Tunnels) refuse(conn *noise.Conn, reason string) {
	_ = conn.SetDeadline(time.Now().Add(min(t.cfg.DialTimeout, 5*time.Second)))
	sess, err := mux.Server(conn, &mux.Config{MaxStreams: 1, AcceptBacklog: 1, Logger: t.log})
	if err != nil {
		conn.Close()
		return
	}
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), min(t.cfg.DialTimeout, 5*time.Second))
	defer cancel()
	st, err := sess.AcceptStreamContext(ctx)
	if err != nil {
		return
	}
	defer st.Close()
	if target, err := mux.ReadHeader(st); err != nil || target != ControlTarget {
		mux.Abort(st)
		return
	}
	w := &ctlWriter{c: st}
	farewell(sess, w, Refused{Reason: reason})
}

// Recheck closes, at once, every inbound tunnel whose peer key
// Config.Allow no longer accepts (call it after the allow-list changes:
// node.Reload does, on SIGHUP). The peer is told (Refused) and its proxies
// here are removed and deregistered. Tunnels this server dials are pinned
// by their Remote.Key, not allowed by Allow, and stay. Recheck returns
// once those tunnels are closed; it reports how many it closed.
func (t *Tunnels) Recheck() int {
	t.mu.Lock()
	peers := slices.Collect(maps.Values(t.peers))
	t.mu.Unlock()
	var wg sync.WaitGroup
	n := 0
	for _, p := range peers {
		p.mu.Lock()
		sess, w, in := p.sess, p.ctl, p.inbound
		p.mu.Unlock()
		if sess == nil || !in || secure.Authorized(t.cfg.Allow, p.key) {
			continue
		}
		n++
		t.log.Warn("tunnel: closing the tunnel of a key removed from the allow-list", "peer", p.name, "key", p.key.String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.revoke(sess)
			farewell(sess, w, Refused{Reason: reasonRevoked})
			sess.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			p.clear(ctx)
		}()
	}
	wg.Wait()
	return n
}

// importFilter keeps the entries Config.Import lets in.
func (t *Tunnels) importFilter(es []Shared) []Shared {
	if t.cfg.Import == nil {
		return es
	}
	out := es[:0:0]
	for _, e := range es {
		if t.imported(e.Name) {
			out = append(out, e)
		}
	}
	return out
}
