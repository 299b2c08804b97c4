package noise

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/secure"
)

// Each way an inbound handshake fails is counted under its reason: a
// stranger's key, garbage instead of the preamble, a hang-up, silence.
func TestResponderHandshakeFailures(t *testing.T) {
	rkp, friend, stranger := newKeyPair(t), newKeyPair(t), newKeyPair(t)
	r, err := NewResponder(Config{Static: rkp, Peers: secure.NewAllowList(friend.Public), HandshakeTimeout: 300 * time.Millisecond,
		HandshakeRate: 1000, HandshakeBurst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := r.Listen(l)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	wait := func(f HandshakeFailure, n int64) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, f.String()+" counted", func() bool { return r.HandshakeFailures()[f] == n })
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := Initiate(ctx, dial(), Config{Static: stranger, RemoteKey: rkp.Public}); err == nil {
		t.Fatal("a stranger's handshake worked")
	}
	wait(FailUnauthorized, 1)
	c := dial()
	c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"))
	wait(FailPreamble, 1)
	dial().Close()
	wait(FailClosed, 1)
	dial() // silent
	wait(FailTimeout, 1)
	conn, err := Initiate(context.Background(), dial(), Config{Static: friend, RemoteKey: rkp.Public})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	got := r.HandshakeFailures()
	want := HandshakeFailures{}
	want[FailUnauthorized], want[FailPreamble], want[FailClosed], want[FailTimeout] = 1, 1, 1, 1
	if got != want {
		t.Fatalf("failures %v, want %v", got, want)
	}
	if FailBusy.String() != "busy" || HandshakeFailure(200).String() != "unknown" {
		t.Fatal("String")
	}
}
