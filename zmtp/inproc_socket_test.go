package zmtp

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// TestInprocEndpoints: inproc://NAME binds once per process, reports
// itself as bound, frees the name on Close, and a Connect made before
// the Bind gets through once it happens.
func TestInprocEndpoints(t *testing.T) {
	ep := "inproc://" + t.Name()
	push := newSock(t, PUSH, Config{ReconnectInterval: 5 * time.Millisecond})
	connect(t, push, ep) // nobody there yet: retried
	sendT(t, push, "queued before the bind")
	pull := newSock(t, PULL, Config{})
	if got := bind(t, pull, ep); got != ep {
		t.Fatalf("Endpoint() = %q, want %q", got, ep)
	}
	eq(t, recvT(t, pull), "queued before the bind")
	other := newSock(t, PULL, Config{})
	if err := other.Bind(ep); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second bind of %s: %v, want EADDRINUSE", ep, err)
	}
	pull.Close()
	bind(t, other, ep)
	sendT(t, push, "after the rebind")
	eq(t, recvT(t, other), "after the rebind")
	if err := pull.Bind("inproc://"); !errors.Is(err, ErrBadEndpoint) {
		t.Fatalf("empty inproc name: %v", err)
	}
}

// TestPairOverEveryTransport: a PAIR talks to one PAIR both ways.
func TestPairOverEveryTransport(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		a := newSock(t, PAIR, Config{})
		b := newSock(t, PAIR, Config{})
		connect(t, b, bind(t, a, newEP()))
		sendT(t, a, "to b")
		eq(t, recvT(t, b), "to b")
		sendT(t, b, "to a", "two parts")
		eq(t, recvT(t, a), "to a", "two parts")
	})
}

// TestZMTP30Peer: a 3.1 socket and a 3.0 one agree on 3.0, where
// subscriptions travel as "\x01topic" messages instead of SUBSCRIBE
// commands (heartbeats, 3.1 only, are configured but must stay off).
func TestZMTP30Peer(t *testing.T) {
	for _, oldSub := range []bool{true, false} {
		name := "old-XPUB"
		if oldSub {
			name = "old-SUB"
		}
		t.Run(name, func(t *testing.T) {
			pubCfg, subCfg := Config{HeartbeatInterval: 10 * time.Millisecond}, Config{HeartbeatInterval: 10 * time.Millisecond}
			if oldSub {
				subCfg = WithZMTP30(subCfg)
			} else {
				pubCfg = WithZMTP30(pubCfg)
			}
			xpub := newSock(t, XPUB, pubCfg)
			sub := newSock(t, SUB, subCfg)
			sub.Subscribe([]byte("a"))
			connect(t, sub, bind(t, xpub, "inproc://"+t.Name()))
			eq(t, recvT(t, xpub), "\x01a")
			waitPeers(t, xpub, 1)
			xpub.mu.Lock()
			v31 := xpub.pipes[0].v31
			xpub.mu.Unlock()
			if v31 {
				t.Fatal("the link speaks 3.1 although one side announced 3.0")
			}
			sendT(t, xpub, "a", "news")
			eq(t, recvT(t, sub), "a", "news")
		})
	}
}

// TestInprocManySockets: hundreds of servers and clients in one process
// over inproc, each pair exchanging a request and a reply; closing them all
// leaves no goroutine behind.
func TestInprocManySockets(t *testing.T) {
	const n = 300
	before := runtime.NumGoroutine()
	socks := make([]*Socket, 0, 2*n)
	for i := range n {
		ep := fmt.Sprintf("inproc://%s/%d", t.Name(), i)
		srv, err := NewSocket(ROUTER, Config{Linger: -1})
		if err != nil {
			t.Fatal(err)
		}
		cli, err := NewSocket(DEALER, Config{Linger: -1})
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, srv, cli)
		bind(t, srv, ep)
		connect(t, cli, ep)
		sendT(t, cli, "hello", fmt.Sprint(i))
	}
	for i := range n {
		srv, cli := socks[2*i], socks[2*i+1]
		m := recvT(t, srv)
		if len(m) != 3 || string(m[2]) != fmt.Sprint(i) {
			t.Fatalf("server %d got %q", i, m)
		}
		sendT(t, srv, string(m[0]), "welcome")
		eq(t, recvT(t, cli), "welcome")
	}
	for _, s := range socks {
		s.Close()
	}
	testutil.CheckGoroutines(t, before)
}
