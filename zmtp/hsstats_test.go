package zmtp_test

import (
	"net"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/zmtp"
)

// Each way a handshake fails is counted under its own reason, and nothing
// else is: a good peer afterwards adds no failure.
func TestHandshakeFailuresByReason(t *testing.T) {
	srv, err := zmtp.NewSocket(zmtp.REP, zmtp.Config{HandshakeTimeout: 300 * time.Millisecond, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Bind("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := srv.Endpoint()[len("tcp://"):]
	raw := func(send []byte, closeAfter bool) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if send != nil {
			c.Write(send)
		}
		if closeAfter {
			c.Close()
		}
		return c
	}
	wait := func(r zmtp.HandshakeFailure, n int64) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, r.String()+" failures", func() bool {
			return srv.HandshakeFailures()[r] == n
		})
	}
	raw([]byte("GET / HTTP/1.1\r\n\r\n"), false) // not a greeting
	wait(zmtp.FailGreeting, 1)
	raw(nil, true) // connects and hangs up
	wait(zmtp.FailClosed, 1)
	raw(nil, false) // says nothing
	wait(zmtp.FailTimeout, 1)
	// A PLAIN peer at a NULL socket: a mechanism mismatch, in the greeting.
	g := zmtp.AppendGreeting(nil, zmtp.Greeting{Major: 3, Minor: 1, Mechanism: "PLAIN"})
	raw(g, false)
	wait(zmtp.FailGreeting, 2)
	// A PUB cannot talk to a REP.
	pub, err := zmtp.NewSocket(zmtp.PUB, zmtp.Config{Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Connect(srv.Endpoint()); err != nil {
		t.Fatal(err)
	}
	wait(zmtp.FailSocketType, 1)
	pub.Close()

	req, err := zmtp.NewSocket(zmtp.REQ, zmtp.Config{Linger: -1, RecvTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	if err := req.Connect(srv.Endpoint()); err != nil {
		t.Fatal(err)
	}
	go func() {
		if m, err := srv.Recv(); err == nil {
			srv.Send(m...)
		}
	}()
	if err := req.Send([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Recv(); err != nil {
		t.Fatal(err)
	}
	got := srv.HandshakeFailures()
	want := zmtp.HandshakeFailures{}
	want[zmtp.FailGreeting], want[zmtp.FailClosed], want[zmtp.FailTimeout], want[zmtp.FailSocketType] = 2, 1, 1, got[zmtp.FailSocketType]
	if got != want || got[zmtp.FailSocketType] < 1 {
		t.Fatalf("failures %v, want %v", got, want)
	}
	if zmtp.FailSecurity.String() != "security" || zmtp.HandshakeFailure(99).String() != "unknown" {
		t.Fatal("String")
	}
}
