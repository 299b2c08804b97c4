package zmtp

import (
	"net"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
)

// TestPeerInfoAndDrop: a ROUTER knows each peer's type and address by its
// routing id; DropPeers closes exactly the connections its function picks
// (a Connect-side peer then reconnects); Disconnect closes one after what
// was queued for it is written.
func TestPeerInfoAndDrop(t *testing.T) {
	forEachTransport(t, func(t *testing.T, newEP func() string) {
		r := newSock(t, ROUTER, Config{})
		ep := bind(t, r, newEP())
		a := newSock(t, DEALER, Config{ReconnectInterval: 10 * time.Millisecond, RoutingID: []byte("a")})
		b := newSock(t, REQ, Config{ReconnectInterval: 10 * time.Millisecond, RoutingID: []byte("b")})
		connect(t, a, ep)
		connect(t, b, ep)
		if err := a.Send([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		if err := b.Send([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		recvT(t, r)
		recvT(t, r)
		pa, ok := r.Peer([]byte("a"))
		if !ok || pa.Type != DEALER || pa.UserID != "" || pa.RemoteAddr == nil {
			t.Fatalf("Peer(a) = %+v, %v", pa, ok)
		}
		if _, isTCP := pa.RemoteAddr.(*net.TCPAddr); isTCP != (ep[:3] == "tcp") {
			t.Fatalf("Peer(a).RemoteAddr = %T on %s", pa.RemoteAddr, ep)
		}
		if _, ok := r.Peer([]byte("nobody")); ok {
			t.Fatal("Peer of an unknown id")
		}
		if n := r.DropPeers(func(p PeerInfo) bool { return p.Type == DEALER }); n != 1 {
			t.Fatalf("DropPeers dropped %d, want 1", n)
		}
		if pb, ok := r.Peer([]byte("b")); !ok || pb.Type != REQ {
			t.Fatalf("the REQ peer after dropping DEALERs: %+v %v", pb, ok)
		}
		// a reconnects: its next message arrives on a new connection.
		testutil.Eventually(t, 5*time.Second, "the dropped DEALER reconnects", func() bool {
			_, ok := r.Peer([]byte("a"))
			return ok
		})
		// Disconnect after a reply: b gets the reply, then the connection ends.
		if err := r.Send([]byte("b"), nil, []byte("bye")); err != nil {
			t.Fatal(err)
		}
		if !r.Disconnect([]byte("b")) {
			t.Fatal("Disconnect(b): no such peer")
		}
		if m := recvT(t, b); string(m[0]) != "bye" {
			t.Fatalf("b got %q", m)
		}
		if r.Disconnect([]byte("nobody")) {
			t.Fatal("Disconnect of an unknown id")
		}
	})
}
