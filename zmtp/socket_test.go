package zmtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// transports are the transports the pattern tests run over, each with
// the i-th endpoint a test binds (tcp binds port 0: Endpoint says which).
var transports = []struct {
	name     string
	endpoint func(t *testing.T, i int) string
}{
	{"tcp", func(*testing.T, int) string { return "tcp://127.0.0.1:0" }},
	{"ipc", func(t *testing.T, i int) string { return "ipc://" + filepath.Join(t.TempDir(), fmt.Sprint(i)+".sock") }},
	{"inproc", func(t *testing.T, i int) string { return fmt.Sprintf("inproc://%s/%d", t.Name(), i) }},
}

// forEachTransport runs test once per transport; newEP returns a fresh
// endpoint to bind at each call.
func forEachTransport(t *testing.T, test func(t *testing.T, newEP func() string)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := 0
			test(t, func() string {
				n++
				return tr.endpoint(t, n)
			})
		})
	}
}

// newSock makes a socket closed at the end of the test.
func newSock(t testing.TB, typ SocketType, opt Config) *Socket {
	t.Helper()
	s, err := NewSocket(typ, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func bind(t testing.TB, s *Socket, ep string) string {
	t.Helper()
	if err := s.Bind(ep); err != nil {
		t.Fatal(err)
	}
	return s.Endpoint()
}

func connect(t testing.TB, s *Socket, ep string) {
	t.Helper()
	if err := s.Connect(ep); err != nil {
		t.Fatal(err)
	}
}

// recvT receives with a generous deadline so a bug fails instead of hanging.
func recvT(t testing.TB, s *Socket) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.RecvContext(ctx)
	if err != nil {
		t.Fatalf("recv on %s: %v", s.Type(), err)
	}
	return m
}

func sendT(t testing.TB, s *Socket, frames ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var fs [][]byte
	for _, f := range frames {
		fs = append(fs, []byte(f))
	}
	if err := s.SendContext(ctx, fs...); err != nil {
		t.Fatalf("send on %s: %v", s.Type(), err)
	}
}

func strs(m [][]byte) []string {
	var out []string
	for _, f := range m {
		out = append(out, string(f))
	}
	return out
}

func eq(t testing.TB, got [][]byte, want ...string) {
	t.Helper()
	if fmt.Sprint(strs(got)) != fmt.Sprint(want) || len(got) != len(want) {
		t.Fatalf("got %q, want %q", strs(got), want)
	}
}

func TestPushPullOrderAndMultipart(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		pull := newSock(t, PULL, Config{})
		push := newSock(t, PUSH, Config{})
		connect(t, push, bind(t, pull, newEP()))
		const n = 5000
		go func() {
			for i := 0; i < n; i++ {
				push.Send([]byte(fmt.Sprint(i)), nil, bytes.Repeat([]byte{'x'}, i%300))
			}
		}()
		for i := 0; i < n; i++ {
			m := recvT(t, pull)
			if len(m) != 3 || string(m[0]) != fmt.Sprint(i) || len(m[1]) != 0 || len(m[2]) != i%300 {
				t.Fatalf("message %d: %q", i, strs(m))
			}
		}
	})
}

func TestConnectBeforeBind(t *testing.T) {
	// Find a free port, release it, connect first, bind later.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ep := "tcp://" + l.Addr().String()
	l.Close()
	push := newSock(t, PUSH, Config{ReconnectInterval: 10 * time.Millisecond})
	connect(t, push, ep)
	sendT(t, push, "queued before the peer existed")
	testutil.Eventually(t, 10*time.Second, "a refused connection attempt", func() bool { return push.ConnectError() != nil })
	pull := newSock(t, PULL, Config{})
	bind(t, pull, ep)
	eq(t, recvT(t, pull), "queued before the peer existed")
}

func TestIPCAndIPv6(t *testing.T) {
	eps := []string{"ipc://" + filepath.Join(t.TempDir(), "z.sock")}
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		l.Close()
		eps = append(eps, "tcp://[::1]:0")
	}
	for _, ep := range eps {
		rep := newSock(t, REP, Config{})
		req := newSock(t, REQ, Config{})
		connect(t, req, bind(t, rep, ep))
		sendT(t, req, "ping")
		eq(t, recvT(t, rep), "ping")
		sendT(t, rep, "pong")
		eq(t, recvT(t, req), "pong")
	}
}

func TestReqRepStrictAlternation(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		rep := newSock(t, REP, Config{})
		req := newSock(t, REQ, Config{})
		connect(t, req, bind(t, rep, newEP()))
		if _, err := req.Recv(); !errors.Is(err, ErrState) {
			t.Fatalf("REQ recv before send: %v, want ErrState", err)
		}
		if err := rep.Send([]byte("x")); !errors.Is(err, ErrState) {
			t.Fatalf("REP send before recv: %v, want ErrState", err)
		}
		sendT(t, req, "a", "b")
		if err := req.Send([]byte("again")); !errors.Is(err, ErrState) {
			t.Fatalf("REQ second send: %v, want ErrState", err)
		}
		eq(t, recvT(t, rep), "a", "b")
		sendT(t, rep, "c")
		eq(t, recvT(t, req), "c")
	})
}

func TestRepServesManyRequesters(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		rep := newSock(t, REP, Config{})
		ep := bind(t, rep, newEP())
		go func() {
			for {
				m, err := rep.Recv()
				if err != nil {
					return
				}
				rep.Send(append([]byte("re:"), m[0]...))
			}
		}()
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				req := newSock(t, REQ, Config{})
				connect(t, req, ep)
				for j := 0; j < 20; j++ {
					body := fmt.Sprintf("%d-%d", i, j)
					sendT(t, req, body)
					if m := recvT(t, req); string(m[0]) != "re:"+body {
						t.Errorf("requester %d got %q", i, m[0])
					}
				}
			}(i)
		}
		wg.Wait()
	})
}

func TestRouterDealerRouting(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		router := newSock(t, ROUTER, Config{RouterMandatory: true})
		ep := bind(t, router, newEP())
		a := newSock(t, DEALER, Config{RoutingID: []byte("alice")})
		b := newSock(t, DEALER, Config{})
		connect(t, a, ep)
		connect(t, b, ep)
		sendT(t, a, "from a")
		sendT(t, b, "from b")
		ids := map[string][]byte{}
		for i := 0; i < 2; i++ {
			m := recvT(t, router)
			ids[string(m[1])] = m[0]
		}
		if string(ids["from a"]) != "alice" {
			t.Fatalf("alice's id = %q", ids["from a"])
		}
		if idb := ids["from b"]; len(idb) != 5 || idb[0] != 0 {
			t.Fatalf("generated id = %q, want 5 bytes starting with 0", idb)
		}
		router.Send(ids["from b"], []byte("to b"))
		router.Send([]byte("alice"), []byte("to a"), []byte("part 2"))
		eq(t, recvT(t, b), "to b")
		eq(t, recvT(t, a), "to a", "part 2")
		if err := router.Send([]byte("nobody"), []byte("x")); !errors.Is(err, ErrHostUnreachable) {
			t.Fatalf("send to unknown id with RouterMandatory: %v", err)
		}
	})
}

func TestRouterDropsUnroutable(t *testing.T) {
	router := newSock(t, ROUTER, Config{})
	if err := router.Send([]byte("nobody"), []byte("x")); err != nil {
		t.Fatalf("unroutable send without RouterMandatory: %v, want silent drop", err)
	}
}

func TestDealerRoundRobinPullFairQueue(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		// One PUSH to two PULLs: messages alternate.
		p1 := newSock(t, PULL, Config{})
		p2 := newSock(t, PULL, Config{})
		push := newSock(t, PUSH, Config{})
		connect(t, push, bind(t, p1, newEP()))
		connect(t, push, bind(t, p2, newEP()))
		waitPeers(t, push, 2)
		for i := 0; i < 10; i++ {
			sendT(t, push, fmt.Sprint(i))
		}
		for i := 0; i < 10; i += 2 {
			a, b := recvT(t, p1), recvT(t, p2)
			got := map[string]bool{string(a[0]): true, string(b[0]): true}
			if !got[fmt.Sprint(i)] || !got[fmt.Sprint(i+1)] {
				t.Fatalf("round %d: %q and %q", i, a[0], b[0])
			}
		}

		// Two PUSHes to one PULL: neither starves while both have messages.
		pull := newSock(t, PULL, Config{})
		ep := bind(t, pull, newEP())
		for i := 0; i < 2; i++ {
			s := newSock(t, PUSH, Config{}) // closed by t.Cleanup
			connect(t, s, ep)
			for j := 0; j < 100; j++ {
				sendT(t, s, fmt.Sprint(i))
			}
		}
		waitQueued(t, pull, 200)
		counts := map[string]int{}
		for j := 0; j < 100; j++ {
			counts[string(recvT(t, pull)[0])]++
		}
		if counts["0"] < 40 || counts["1"] < 40 {
			t.Fatalf("unfair queueing over the first 100 messages: %v", counts)
		}
	})
}

// waitPeers waits until s has n connected peers.
func waitPeers(t testing.TB, s *Socket, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%s socket with %d peers", s.typ, n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := 0
		for _, p := range s.pipes {
			if p.c != nil {
				k++
			}
		}
		return k >= n
	})
}

// waitQueued waits until s holds n received messages.
func waitQueued(t testing.TB, s *Socket, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%s socket holding %d messages", s.typ, n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := 0
		for _, p := range s.pipes {
			k += p.in.len()
		}
		return k >= n
	})
}

// waitPeerSubs waits until s (PUB, XPUB) holds exactly the subscriptions
// want from its peers, in any order.
func waitPeerSubs(t testing.TB, s *Socket, want ...string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("peer subscriptions %q", want), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		var got []string
		for _, p := range s.pipes {
			for _, sub := range p.peerSubs {
				got = append(got, string(sub))
			}
		}
		slices.Sort(got)
		return slices.Equal(got, slices.Sorted(slices.Values(want)))
	})
}

func TestPubSubFilteringAtPublisher(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		pub := newSock(t, PUB, Config{})
		ep := bind(t, pub, newEP())
		sub := newSock(t, SUB, Config{})
		sub.Subscribe([]byte("weather."))
		connect(t, sub, ep)
		waitPeerSubs(t, pub, "weather.")
		// The publisher must not even queue a non-matching message.
		sendT(t, pub, "sports.football", "x")
		pub.mu.Lock()
		queued := pub.pipes[0].outMsgs + len(pub.pipes[0].out)
		pub.mu.Unlock()
		if queued != 0 {
			t.Fatalf("publisher queued a message nobody subscribed to")
		}
		sendT(t, pub, "weather.paris", "rain")
		eq(t, recvT(t, sub), "weather.paris", "rain")

		sub.Unsubscribe([]byte("weather."))
		sub.Subscribe([]byte("sports."))
		waitPeerSubs(t, pub, "sports.")
		sendT(t, pub, "weather.oslo", "snow")
		sendT(t, pub, "sports.tennis", "ace")
		eq(t, recvT(t, sub), "sports.tennis", "ace")
	})
}

func TestXPubSeesSubscriptions(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		xpub := newSock(t, XPUB, Config{})
		sub := newSock(t, SUB, Config{})
		sub.Subscribe([]byte("a"))
		connect(t, sub, bind(t, xpub, newEP()))
		eq(t, recvT(t, xpub), "\x01a")
		sub.Unsubscribe([]byte("a"))
		eq(t, recvT(t, xpub), "\x00a")
	})
}

func TestPubDropsAtHWMPushBlocks(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		// A PUSH with no peer blocks, and times out.
		push := newSock(t, PUSH, Config{SendTimeout: 50 * time.Millisecond})
		bind(t, push, newEP())
		if err := push.Send([]byte("x")); !errors.Is(err, ErrTimeout) {
			t.Fatalf("PUSH without peers: %v, want ErrTimeout", err)
		}
		// A PUSH whose only peer is disconnected queues up to SendHWM, then blocks.
		push2 := newSock(t, PUSH, Config{SendHWM: 3, SendTimeout: 50 * time.Millisecond, Linger: -1})
		unbound := newEP() // nothing binds it
		if strings.HasPrefix(unbound, "tcp:") {
			unbound = "tcp://127.0.0.1:1"
		}
		connect(t, push2, unbound)
		for i := 0; i < 3; i++ {
			sendT(t, push2, "q")
		}
		if err := push2.Send([]byte("x")); !errors.Is(err, ErrTimeout) {
			t.Fatalf("PUSH past SendHWM: %v, want ErrTimeout", err)
		}
		// A PUB never blocks.
		pub := newSock(t, PUB, Config{SendHWM: 1})
		bind(t, pub, newEP())
		for i := 0; i < 100; i++ {
			sendT(t, pub, "x")
		}
	})
}

// TestXSubSubscribesByMessage: an XSUB subscribes by sending "\x01topic"
// and gets what matches from a PUB.
func TestXSubSubscribesByMessage(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		pub := newSock(t, PUB, Config{})
		xsub := newSock(t, XSUB, Config{})
		connect(t, xsub, bind(t, pub, newEP()))
		sendT(t, xsub, "\x01news.")
		waitPeerSubs(t, pub, "news.")
		sendT(t, pub, "sport", "x")
		sendT(t, pub, "news.today", "y")
		eq(t, recvT(t, xsub), "news.today", "y")
	})
}

// TestRecvTimeoutReused: the RecvTimeout timer a socket keeps for its
// waits times out every Recv that waits, again and again, and concurrent
// waiters each get the full timeout; a message still arrives after them.
func TestRecvTimeoutReused(t *testing.T) {
	const timeout = 30 * time.Millisecond
	pull := newSock(t, PULL, Config{RecvTimeout: timeout})
	ep := bind(t, pull, "tcp://127.0.0.1:0")
	for i := range 3 {
		start := time.Now()
		if _, err := pull.Recv(); !errors.Is(err, ErrTimeout) {
			t.Fatalf("recv %d: %v, want ErrTimeout", i, err)
		}
		if d := time.Since(start); d < timeout {
			t.Fatalf("recv %d timed out after %v, before RecvTimeout %v", i, d, timeout)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pull.Recv()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("concurrent recv %d: %v, want ErrTimeout", i, err)
		}
	}
	push := newSock(t, PUSH, Config{})
	connect(t, push, ep)
	sendT(t, push, "after")
	eq(t, recvT(t, pull), "after")
	// A stale expiry of an earlier wait must not end a later one early. The
	// sleep is the subject: it gives any stale expiry time to fire.
	time.Sleep(2 * timeout)
	start := time.Now()
	if _, err := pull.Recv(); !errors.Is(err, ErrTimeout) || time.Since(start) < timeout {
		t.Fatalf("recv after a message: %v after %v, want ErrTimeout after %v", err, time.Since(start), timeout)
	}
}

// TestConnectError: a socket that cannot reach its peer says why (a dial
// error, a handshake error), and forgets it once a connection is made.
func TestConnectError(t *testing.T) {
	waitErr := func(s *Socket, want func(error) bool) error {
		t.Helper()
		var err error
		testutil.Eventually(t, 10*time.Second, "the expected ConnectError", func() bool {
			err = s.ConnectError()
			return want(err)
		})
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	dealer := newSock(t, DEALER, Config{ReconnectInterval: 10 * time.Millisecond, ReconnectIntervalMax: 20 * time.Millisecond})
	if err := dealer.ConnectError(); err != nil {
		t.Fatalf("before any attempt: %v", err)
	}
	connect(t, dealer, "tcp://"+addr)
	err = waitErr(dealer, func(err error) bool { return err != nil })
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("dial error %q does not name %s", err, addr)
	}
	// A peer with another mechanism: the handshake error.
	plain := newSock(t, ROUTER, Config{Security: PlainServer(PlainCredentials("u", "p"))})
	bind(t, plain, "tcp://"+addr)
	waitErr(dealer, func(err error) bool { return errors.Is(err, ErrMechanism) })
	plain.Close()
	// A peer it can talk to: no error any more.
	router := newSock(t, ROUTER, Config{})
	bind(t, router, "tcp://"+addr)
	waitErr(dealer, func(err error) bool { return err == nil })
	sendT(t, dealer, "hello")
	if m := recvT(t, router); string(m[1]) != "hello" {
		t.Fatalf("router got %q", m)
	}
}

// TestConnectFailedQuietRetries: a peer that refuses every handshake the
// same way closes ConnectFailed's channel at each attempt, and the socket
// logs the failure at Warn once, the retries at Debug (with a reminder at
// Warn every handshakeWarnEvery); a different failure is logged at Warn.
func TestConnectFailedQuietRetries(t *testing.T) {
	plain := newSock(t, ROUTER, Config{Security: PlainServer(PlainCredentials("u", "p"))})
	ep := bind(t, plain, "tcp://127.0.0.1:0")
	logs := &levelCounter{}
	dealer := newSock(t, DEALER, Config{ReconnectInterval: 10 * time.Millisecond, ReconnectIntervalMax: 20 * time.Millisecond,
		Logger: slog.New(logs)})
	failed := dealer.ConnectFailed()
	connect(t, dealer, ep)
	for i := range 5 {
		select {
		case <-failed:
		case <-time.After(10 * time.Second):
			t.Fatalf("ConnectFailed not closed by attempt %d (ConnectError %v)", i+1, dealer.ConnectError())
		}
		if err := dealer.ConnectError(); !errors.Is(err, ErrMechanism) {
			t.Fatalf("attempt %d: ConnectError %v, want ErrMechanism", i+1, err)
		}
		failed = dealer.ConnectFailed()
	}
	mismatch := func(level slog.Level) int {
		return logs.count(level, "zmtp: handshake failed", func(err string) bool { return strings.Contains(err, ErrMechanism.Error()) })
	}
	if w, d := mismatch(slog.LevelWarn), mismatch(slog.LevelDebug); w != 1 || d < 4 {
		t.Fatalf("the mechanism mismatch logged %d times at Warn and %d at Debug, want 1 and at least 4", w, d)
	}
	// Another refusal (a PLAIN client with a wrong password) is news.
	wrong := newSock(t, DEALER, Config{Security: PlainClient("u", "wrong"), ReconnectInterval: 10 * time.Millisecond,
		ReconnectIntervalMax: 20 * time.Millisecond, Logger: slog.New(logs)})
	failed = wrong.ConnectFailed()
	connect(t, wrong, ep)
	for i := range 3 {
		select {
		case <-failed:
		case <-time.After(10 * time.Second):
			t.Fatalf("ConnectFailed not closed by attempt %d with a wrong password", i+1)
		}
		failed = wrong.ConnectFailed()
	}
	if err := wrong.ConnectError(); !errors.Is(err, ErrPeerError) {
		t.Fatalf("wrong password: ConnectError %v, want the server's ERROR", err)
	}
	refused := func(err string) bool { return strings.Contains(err, ErrPeerError.Error()) }
	if w := logs.count(slog.LevelWarn, "zmtp: handshake failed", refused); w != 1 {
		t.Fatalf("the refused password logged %d times at Warn, want 1", w)
	}
}

// TestAcceptedFailuresLoggedOncePerSource: a server whose clients keep
// failing the handshake the same way (a wrong password, a wrong CURVE
// server key) logs it at Warn once per source, the repeats at Debug.
func TestAcceptedFailuresLoggedOncePerSource(t *testing.T) {
	logs := &levelCounter{}
	plain := newSock(t, ROUTER, Config{Security: PlainServer(PlainCredentials("u", "p")), Logger: slog.New(logs)})
	ep := bind(t, plain, "tcp://127.0.0.1:0")
	wrong := newSock(t, DEALER, Config{Security: PlainClient("u", "wrong"), ReconnectInterval: 10 * time.Millisecond,
		ReconnectIntervalMax: 20 * time.Millisecond})
	failed := wrong.ConnectFailed()
	connect(t, wrong, ep)
	for i := range 5 {
		select {
		case <-failed:
		case <-time.After(10 * time.Second):
			t.Fatalf("ConnectFailed not closed by attempt %d", i+1)
		}
		failed = wrong.ConnectFailed()
	}
	any := func(string) bool { return true }
	testutil.Eventually(t, 5*time.Second, "the server logs the repeats", func() bool {
		return logs.count(slog.LevelDebug, "zmtp: handshake failed", any) >= 3
	})
	if w := logs.count(slog.LevelWarn, "zmtp: handshake failed", any); w != 1 {
		t.Fatalf("the server logged the wrong password %d times at Warn, want once", w)
	}
}

// levelCounter is a slog.Handler that keeps the level, message and "err"
// of each record.
type levelCounter struct {
	mu   sync.Mutex
	recs []levelRecord
}

type levelRecord struct {
	level    slog.Level
	msg, err string
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *levelCounter) WithGroup(string) slog.Handler            { return h }

func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	rec := levelRecord{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			rec.err = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, rec)
	return nil
}

// count counts the records of level and msg whose err matches.
func (h *levelCounter) count(level slog.Level, msg string, match func(err string) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.level == level && r.msg == msg && match(r.err) {
			n++
		}
	}
	return n
}

func TestContextCancelsRecv(t *testing.T) {
	pull := newSock(t, PULL, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := pull.RecvContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RecvContext: %v", err)
	}
	// Close while Recv waits; the sleep only makes the wait likely, the
	// check holds either way.
	go func() { time.Sleep(20 * time.Millisecond); pull.Close() }()
	if _, err := pull.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv across Close: %v, want ErrClosed", err)
	}
}

// TestLingerFlushesOnClose: everything Send accepted reaches the peer even
// when Close follows the last Send at once (zmq4 drops these).
func TestLingerFlushesOnClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		pull := newSock(t, PULL, Config{RecvHWM: 100})
		ep := bind(t, pull, newEP())
		push, _ := NewSocket(PUSH, Config{SendHWM: 100000})
		connect(t, push, ep)
		const n = 20000
		// Sends run beside the receiver: what a transport buffers (a TCP
		// socket holds all of it, inproc far less) must not matter.
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			for i := 0; i < n; i++ {
				if err := push.Send([]byte(fmt.Sprint(i)), make([]byte, 100)); err != nil {
					t.Error(err)
					break
				}
			}
			push.Close()
		}()
		for i := 0; i < n; i++ {
			if m := recvT(t, pull); string(m[0]) != fmt.Sprint(i) {
				t.Fatalf("message %d: %q", i, m[0])
			}
		}
		<-closed
	})
}

// TestRepLastReplySurvivesClose: a REP that closes right after replying
// still delivers the reply.
func TestRepLastReplySurvivesClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		req := newSock(t, REQ, Config{})
		rep, _ := NewSocket(REP, Config{})
		connect(t, req, bind(t, rep, newEP()))
		sendT(t, req, "last question")
		recvT(t, rep)
		sendT(t, rep, "last answer")
		rep.Close()
		eq(t, recvT(t, req), "last answer")
	})
}

// TestReconnectKeepsQueue: a connecting PUSH whose peer goes away keeps
// what it queued meanwhile and delivers it to the restarted peer.
func TestReconnectKeepsQueue(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		pull := newSock(t, PULL, Config{})
		ep := bind(t, pull, newEP())
		push := newSock(t, PUSH, Config{ReconnectInterval: 10 * time.Millisecond, ReconnectIntervalMax: 50 * time.Millisecond})
		connect(t, push, ep)
		sendT(t, push, "before")
		eq(t, recvT(t, pull), "before")
		pull.Close()
		waitPeers(t, push, 0)
		testutil.Eventually(t, 5*time.Second, "PUSH noticing its peer is gone", func() bool {
			push.mu.Lock()
			defer push.mu.Unlock()
			return push.pipes[0].c == nil
		})
		sendT(t, push, "while away 1")
		sendT(t, push, "while away 2")
		pull2 := newSock(t, PULL, Config{})
		bind(t, pull2, ep)
		eq(t, recvT(t, pull2), "while away 1")
		eq(t, recvT(t, pull2), "while away 2")
	})
}

func TestPlainMechanism(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		rep := newSock(t, REP, Config{Security: PlainServer(PlainCredentials("admin", "secret"))})
		ep := bind(t, rep, newEP())
		good := newSock(t, REQ, Config{Security: PlainClient("admin", "secret")})
		connect(t, good, ep)
		sendT(t, good, "hi")
		eq(t, recvT(t, rep), "hi")
		sendT(t, rep, "welcome")
		eq(t, recvT(t, good), "welcome")

		bad := newSock(t, REQ, Config{Security: PlainClient("admin", "wrong"), ReconnectInterval: time.Hour, Linger: -1})
		connect(t, bad, ep)
		sendT(t, bad, "let me in")
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if m, err := rep.RecvContext(ctx); err == nil {
			t.Fatalf("REP got %q from a client with a wrong password", m)
		}
	})
}

func TestHeartbeatKeepsIdleLinkAndDropsDeadPeer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		t.Parallel() // each transport idles for 1.5s
		// A timeout well above the pauses a loaded test machine has.
		opt := Config{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Second}
		rep := newSock(t, REP, opt)
		ep := bind(t, rep, newEP())
		req := newSock(t, REQ, opt)
		connect(t, req, ep)
		sendT(t, req, "1")
		recvT(t, rep)
		time.Sleep(1500 * time.Millisecond) // the subject: idle longer than the timeout, PINGs keep it up
		sendT(t, rep, "1")
		eq(t, recvT(t, req), "1")
		waitPeers(t, rep, 1)

		// A peer that completes the handshake and then goes silent is dropped.
		network, addr, err := parseEndpoint(ep)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := dial(context.Background(), &net.Dialer{}, network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(AppendGreeting(nil, Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}))
		nc.Write(AppendCommand(nil, CmdReady, AppendMetadata(nil, Metadata{{PropSocketType, []byte("REQ")}})))
		waitPeers(t, rep, 2)
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := nc.Read(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the silent peer was not dropped")
				}
				break // the server closed the silent peer
			}
		}
	})
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		before := runtime.NumGoroutine()
		for i := 0; i < 3; i++ {
			a, _ := NewSocket(ROUTER, Config{})
			b, _ := NewSocket(DEALER, Config{})
			a.Bind(newEP())
			b.Connect(a.Endpoint())
			unbound := newEP() // nothing binds it: a dialer in backoff
			if strings.HasPrefix(unbound, "tcp:") {
				unbound = "tcp://127.0.0.1:1"
			}
			b.Connect(unbound)
			b.Send([]byte("x")) // round robin starts with the first pipe, the connected one
			recvT(t, a)
			a.Close()
			b.Close()
		}
		testutil.CheckGoroutines(t, before)
	})
}

func TestRouterConnectsAndReconnects(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		dealer := newSock(t, DEALER, Config{RoutingID: []byte("worker-1")})
		ep := bind(t, dealer, newEP())
		router := newSock(t, ROUTER, Config{RouterMandatory: true, ReconnectInterval: 10 * time.Millisecond})
		connect(t, router, ep)
		waitPeers(t, router, 1)
		sendT(t, router, "worker-1", "job 1")
		eq(t, recvT(t, dealer), "job 1")
		sendT(t, dealer, "done 1")
		eq(t, recvT(t, router), "worker-1", "done 1")

		// The worker restarts on the same endpoint: the router redials and
		// routes to it again under the same id.
		dealer.Close()
		dealer2 := newSock(t, DEALER, Config{RoutingID: []byte("worker-1")})
		bind(t, dealer2, ep)
		testutil.Eventually(t, 10*time.Second, "a route to the restarted worker", func() bool {
			err := router.Send([]byte("worker-1"), []byte("job 2"))
			if err != nil && !errors.Is(err, ErrHostUnreachable) {
				t.Fatalf("router send after the worker restarted: %v", err)
			}
			return err == nil
		})
		eq(t, recvT(t, dealer2), "job 2")
	})
}

func TestBindListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rep := newSock(t, REP, Config{})
	if err := rep.BindListener(l); err != nil {
		t.Fatal(err)
	}
	if rep.Endpoint() != "tcp://"+l.Addr().String() {
		t.Fatalf("Endpoint() = %q for listener %s", rep.Endpoint(), l.Addr())
	}
	req := newSock(t, REQ, Config{})
	connect(t, req, rep.Endpoint())
	sendT(t, req, "via my listener")
	eq(t, recvT(t, rep), "via my listener")
}

// TestPubBuffersReleasedWhenIdle: a PUB whose subscriber lags queues up to
// SendHWM messages in one buffer, which is reused while the connection is
// busy (its writer keeps it) and let go once it has been idle for idleTrim.
func TestPubBuffersReleasedWhenIdle(t *testing.T) {
	// Heartbeats wake the writer every 100 ms; they must not keep
	// postponing the release.
	pub := newSock(t, PUB, Config{SendHWM: 100, HeartbeatInterval: 100 * time.Millisecond})
	sub := newSock(t, SUB, Config{RecvHWM: 1})
	sub.Subscribe(nil)
	connect(t, sub, bind(t, pub, "tcp://127.0.0.1:0"))
	maxQueued := func() int {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		m := 0
		for _, p := range pub.pipes {
			m = max(m, cap(p.out), cap(p.ctrl), cap(p.spareOut), cap(p.spareCtrl))
		}
		return m
	}
	msg := make([]byte, 64<<10)
	// Until the subscription arrives the PUB sends nothing; then the
	// subscriber stops reading and the PUB's queue fills to SendHWM.
	for deadline := time.Now().Add(10 * time.Second); maxQueued() <= maxIdleSpare; {
		if time.Now().After(deadline) {
			t.Fatalf("the PUB's queue never grew past %d bytes", maxIdleSpare)
		}
		sendT(t, pub, string(msg))
	}
	// The subscriber drains everything; then the connection idles. It goes
	// on receiving while the test waits, so that a pause of the test that
	// ended the drain early cannot leave data queued.
	recv := func(wait time.Duration) ([][]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		return sub.RecvContext(ctx)
	}
	for {
		if _, err := recv(500 * time.Millisecond); err != nil {
			break
		}
	}
	for deadline := time.Now().Add(idleTrim + 10*time.Second); maxQueued() > maxIdleSpare; {
		if time.Now().After(deadline) {
			t.Fatalf("an idle PUB still holds a %d-byte queue buffer", maxQueued())
		}
		recv(50 * time.Millisecond)
	}
	// And it still works (after whatever the drain left).
	sendT(t, pub, "after")
	for {
		m, err := recv(10 * time.Second)
		if err != nil {
			t.Fatalf("no \"after\": %v", err)
		}
		if len(m) == 1 && string(m[0]) == "after" {
			break
		}
	}
}

// TestPeerType: a ROUTER tells which kind of socket each routing id is.
func TestPeerType(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		router := newSock(t, ROUTER, Config{})
		ep := bind(t, router, newEP())
		for _, typ := range []SocketType{REQ, DEALER} {
			c := newSock(t, typ, Config{})
			connect(t, c, ep)
			sendT(t, c, "hi")
			msg := recvT(t, router)
			if got, ok := router.PeerType(msg[0]); !ok || got != typ {
				t.Errorf("PeerType of a %s peer = %q, %v", typ, got, ok)
			}
		}
		if got, ok := router.PeerType([]byte("nobody")); ok {
			t.Errorf("PeerType of an unknown id = %q, true", got)
		}
	})
}
