package zmtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// dialStuckPeer connects a raw DEALER with a tiny receive buffer that
// says its routing id, then never reads: a slow consumer.
func dialStuckPeer(t *testing.T, ep, id string) *badPeer {
	return dialStuck(t, ep, "DEALER", id)
}

func dialStuck(t *testing.T, ep, typ, id string) *badPeer {
	t.Helper()
	d := net.Dialer{Control: smallBuffer(syscall.SO_RCVBUF)}
	nc, err := d.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(badHangGuard))
	t.Cleanup(func() { nc.Close() })
	p := &badPeer{t: t, nc: nc}
	p.handshake(typ, Property{Name: PropIdentity, Value: []byte(id)})
	return p
}

// smallBuffer shrinks a socket's kernel buffer (and so turns its
// autotuning off), so that what a peer does not read stays in the socket's
// own accounting, not in the kernel's.
func smallBuffer(opt int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096)
		})
		return errors.Join(err, serr)
	}
}

// bindSmall binds s on loopback with small send buffers for accepted
// connections (Linux copies them from the listener).
func bindSmall(t *testing.T, s *Socket) string {
	t.Helper()
	lc := net.ListenConfig{Control: smallBuffer(syscall.SO_SNDBUF)}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.BindListener(l); err != nil {
		t.Fatal(err)
	}
	return s.Endpoint()
}

// waitPeer waits until r has (or has not) a peer with routing id id.
func waitPeer(t *testing.T, r *Socket, id string, connected bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("peer %q connected=%v", id, connected), func() bool {
		_, ok := r.Peer([]byte(id))
		return ok == connected
	})
}

// TestSlowConsumerCutOff: a ROUTER peer that never reads is cut off once
// what is pending for it would pass MaxPendingBytes: Send says
// ErrSlowConsumer, the counter says 1, the connection is closed, its
// unread requests are not delivered, and a peer that reads gets every
// reply. Afterwards nothing is counted as pending.
func TestSlowConsumerCutOff(t *testing.T) {
	const budget = 256 << 10
	logs := &levelCounter{}
	r := newSock(t, ROUTER, Config{RouterMandatory: true, MaxPendingBytes: budget, Logger: slog.New(logs)})
	ep := bindSmall(t, r)
	good := newSock(t, DEALER, Config{RoutingID: []byte("good")})
	connect(t, good, ep)
	stuck := dialStuckPeer(t, ep, "stuck")
	waitPeer(t, r, "stuck", true)
	waitPeers(t, r, 2)

	// One message over the budget to a peer with nothing pending goes.
	big := bytes.Repeat([]byte("b"), 2*budget)
	if err := r.Send([]byte("good"), big); err != nil {
		t.Fatalf("one big message to an empty queue: %v", err)
	}
	if m := recvT(t, good); !bytes.Equal(m[0], big) {
		t.Fatalf("good peer got %d bytes, want the big message", len(m[0]))
	}

	// Requests the ROUTER has not received yet when the peer is cut.
	for i := range 20 {
		stuck.write(AppendMessage(nil, [][]byte{[]byte(fmt.Sprintf("stuck-%d", i))}))
	}
	waitQueued(t, r, 20)

	page := bytes.Repeat([]byte("x"), 64<<10)
	replies := 0
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 2000 && err == nil; i++ {
		err = r.SendContext(ctx, []byte("stuck"), page)
		if e := r.SendContext(ctx, []byte("good"), []byte(fmt.Sprint("reply-", i))); e != nil {
			t.Fatalf("send to the good peer: %v", e)
		}
		replies++
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("sending to a peer that never reads: %v, want ErrSlowConsumer", err)
	}
	if n := r.SlowConsumers(); n != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", n)
	}
	if _, ok := r.Peer([]byte("stuck")); ok {
		t.Fatal("the slow consumer is still connected")
	}
	stuck.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	stuck.expectClosed()
	if err := r.Send([]byte("stuck"), page); !errors.Is(err, ErrHostUnreachable) {
		t.Fatalf("send after the cut: %v, want ErrHostUnreachable", err)
	}

	for i := range replies {
		if m := recvT(t, good); string(m[0]) != fmt.Sprint("reply-", i) {
			t.Fatalf("good peer got %q, want reply-%d", m[0], i)
		}
	}
	sendT(t, good, "hello")
	for {
		m := recvT(t, r)
		if string(m[0]) == "stuck" {
			t.Fatalf("a request of the cut peer was delivered: %q", m[1])
		}
		if string(m[0]) == "good" {
			break
		}
	}
	testutil.Eventually(t, 10*time.Second, "pending bytes back to 0", func() bool { return r.pendingBytes() == 0 })
	any := func(string) bool { return true }
	if n := logs.count(slog.LevelWarn, "zmtp: slow consumer cut off", any); n != 1 {
		t.Errorf("the cut was logged %d times at Warn, want once", n)
	}
	if n := logs.count(slog.LevelInfo, "zmtp: write failed", any) + logs.count(slog.LevelInfo, "zmtp: peer dropped", any); n != 0 {
		t.Errorf("the cut peer's closed connection was logged %d more times at Info", n)
	}
}

// TestSlowConsumerTotalBudget: several slow peers each under their own
// budget cannot add up past MaxPendingTotal: the one with the most pending
// is cut, the others stay.
func TestSlowConsumerTotalBudget(t *testing.T) {
	r := newSock(t, ROUTER, Config{RouterMandatory: true, MaxPendingBytes: 4 << 20, MaxPendingTotal: 3 << 20})
	ep := bindSmall(t, r)
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		dialStuckPeer(t, ep, id)
		waitPeer(t, r, id, true)
	}
	page := bytes.Repeat([]byte("x"), 64<<10)
	fill := func(id string, want int64) {
		for i := 0; pipePending(r, id) < want; i++ {
			if i == 500 {
				t.Fatalf("%s: %d bytes pending after %d sends", id, pipePending(r, id), i)
			}
			if err := r.Send([]byte(id), page); err != nil {
				t.Fatalf("filling %s: %v", id, err)
			}
		}
	}
	fill("a", 3<<19) // 1.5 MiB: the most
	fill("b", 1<<20)
	// c's messages take the total past 3 MiB: a is cut, not c, not b.
	for i := 0; r.SlowConsumers() == 0; i++ {
		if i == 100 {
			t.Fatal("nobody cut with the total budget passed")
		}
		if err := r.Send([]byte("c"), page); err != nil {
			t.Fatalf("c within its budget: %v", err)
		}
	}
	waitPeer(t, r, "a", false)
	for _, id := range []string{"b", "c"} {
		if _, ok := r.Peer([]byte(id)); !ok {
			t.Fatalf("%s was cut although a held more", id)
		}
	}
	if n := r.SlowConsumers(); n != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", n)
	}
	if p := r.pendingBytes(); p > 3<<20 {
		t.Fatalf("pending %d bytes, over the total budget", p)
	}
}

// pipePending is what r counts as pending for the peer id.
func pipePending(r *Socket, id string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.byID[id]; p != nil {
		return p.pendingOf()
	}
	return -1
}

// TestSlowConsumerWriteTimeout: a peer whose socket buffer is full and
// under its byte budget is cut once a write makes no progress for
// WriteTimeout, and what it held is released.
func TestSlowConsumerWriteTimeout(t *testing.T) {
	r := newSock(t, ROUTER, Config{RouterMandatory: true, WriteTimeout: 200 * time.Millisecond})
	ep := bindSmall(t, r)
	dialStuckPeer(t, ep, "stuck")
	waitPeer(t, r, "stuck", true)
	if err := r.Send([]byte("stuck"), bytes.Repeat([]byte("x"), 7<<20)); err != nil {
		t.Fatal(err)
	}
	waitPeer(t, r, "stuck", false)
	if n := r.SlowConsumers(); n != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", n)
	}
	testutil.Eventually(t, 10*time.Second, "pending bytes back to 0", func() bool { return r.pendingBytes() == 0 })
}

// TestSlowSubscriberCut: a PUB cuts a subscriber that never reads and
// keeps publishing to one that does.
func TestSlowSubscriberCut(t *testing.T) {
	pub := newSock(t, PUB, Config{MaxPendingBytes: 256 << 10})
	ep := bindSmall(t, pub)
	stuck := dialStuck(t, ep, "SUB", "stuck")
	stuck.write(AppendCommand(nil, CmdSubscribe, nil))
	sub := newSock(t, SUB, Config{})
	connect(t, sub, ep)
	if err := sub.Subscribe(nil); err != nil {
		t.Fatal(err)
	}
	waitPeerSubs(t, pub, "", "")
	msg := bytes.Repeat([]byte("x"), 16<<10)
	var received atomic.Int64
	got := make(chan error, 1)
	go func() {
		for range 100 {
			if _, err := sub.Recv(); err != nil {
				got <- err
				return
			}
			received.Add(1)
		}
		got <- nil
	}()
	for i := range 100 {
		// Paced by the reading subscriber, so that only the stuck one lags.
		testutil.Eventually(t, 10*time.Second, "the subscriber reads", func() bool { return received.Load() >= int64(i-1) })
		if err := pub.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if n := pub.SlowConsumers(); n != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", n)
	}
	waitPeers(t, pub, 1)
}

// TestSetPendingLimit: a peer given a budget of its own is held to that
// one, not the socket's.
func TestSetPendingLimit(t *testing.T) {
	r := newSock(t, ROUTER, Config{RouterMandatory: true, MaxPendingBytes: 256 << 10})
	ep := bindSmall(t, r)
	dialStuckPeer(t, ep, "trusted")
	waitPeer(t, r, "trusted", true)
	if !r.SetPendingLimit([]byte("trusted"), 2<<20) || r.SetPendingLimit([]byte("nobody"), 1) {
		t.Fatal("SetPendingLimit: wrong peer found")
	}
	page := bytes.Repeat([]byte("x"), 64<<10)
	var err error
	var held int64
	for i := 0; i < 200 && err == nil; i++ {
		held = pipePending(r, "trusted")
		err = r.Send([]byte("trusted"), page)
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("send past its own budget: %v", err)
	}
	if held < 2<<20-64<<10 {
		t.Fatalf("cut with %d bytes pending, under its own budget", held)
	}
}

// TestSlowConsumerCutsLoggedOnce: a client that reconnects and is cut off
// again and again is logged at Warn once, not at every cut.
func TestSlowConsumerCutsLoggedOnce(t *testing.T) {
	const budget = 64 << 10
	logs := &levelCounter{}
	r := newSock(t, ROUTER, Config{RouterMandatory: true, MaxPendingBytes: budget, Logger: slog.New(logs)})
	ep := bindSmall(t, r)
	page := bytes.Repeat([]byte("x"), 16<<10)
	const cuts = 3
	for i := range cuts {
		id := fmt.Sprint("stuck-", i)
		dialStuckPeer(t, ep, id)
		waitPeer(t, r, id, true)
		var err error
		for j := 0; j < 10000 && err == nil; j++ {
			err = r.Send([]byte(id), page)
		}
		if !errors.Is(err, ErrSlowConsumer) {
			t.Fatalf("cut %d: %v, want ErrSlowConsumer", i, err)
		}
	}
	if n := r.SlowConsumers(); n != cuts {
		t.Fatalf("SlowConsumers = %d, want %d", n, cuts)
	}
	if n := logs.count(slog.LevelWarn, "zmtp: slow consumer cut off", func(string) bool { return true }); n != 1 {
		t.Fatalf("%d cuts from one address gave %d Warn lines, want 1", cuts, n)
	}
}
