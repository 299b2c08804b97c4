package registry_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// syncCounter is a Replicator that counts the SYNC messages it is handed
// and answers JOIN with OK: what an attacker's SYNC would reach.
type syncCounter struct {
	syncs, joins atomic.Int64
}

func (*syncCounter) Start(*registry.Host, time.Time)                       {}
func (*syncCounter) Interval() time.Duration                               { return time.Hour }
func (*syncCounter) Tick(time.Time)                                        {}
func (*syncCounter) Changed(registry.EventType, string, []byte, time.Time) {}
func (*syncCounter) Flush()                                                {}
func (*syncCounter) Info(time.Time) any                                    { return nil }
func (*syncCounter) Stop()                                                 {}
func (r *syncCounter) Join([]byte) (any, *registry.Error) {
	r.joins.Add(1)
	return map[string]bool{"ok": true}, nil
}
func (r *syncCounter) Sync([][]byte, [][]byte, time.Time) *registry.Error { r.syncs.Add(1); return nil }

// rawNull is a hand-driven NULL DEALER connection to endpoint (tcp only):
// it sees exactly what the server writes, and when it closes the
// connection.
type rawNull struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRawNull(t testing.TB, endpoint string) *rawNull {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(endpoint, "tcp://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawNull{t: t, nc: nc, r: bufio.NewReader(nc)}
	c.write(zmtp.AppendGreeting(nil, zmtp.Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}))
	if _, err := io.ReadFull(c.r, make([]byte, zmtp.GreetingSize)); err != nil {
		t.Fatal(err)
	}
	c.write(zmtp.AppendCommand(nil, zmtp.CmdReady, zmtp.AppendMetadata(nil, zmtp.Metadata{{Name: zmtp.PropSocketType, Value: []byte("DEALER")}})))
	return c
}

func (c *rawNull) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawNull) send(frames ...[]byte) { c.t.Helper(); c.write(zmtp.AppendMessage(nil, frames)) }

// recv returns the next message (commands skipped) or the read error.
func (c *rawNull) recv() ([][]byte, error) {
	var msg [][]byte
	for {
		flags, err := c.r.ReadByte()
		if err != nil {
			return nil, err
		}
		var size uint64
		if flags&zmtp.FlagLong != 0 {
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			size = binary.BigEndian.Uint64(b[:])
		} else {
			b, err := c.r.ReadByte()
			if err != nil {
				return nil, err
			}
			size = uint64(b)
		}
		if size > 1<<20 {
			return nil, fmt.Errorf("frame of %d bytes", size)
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(c.r, body); err != nil {
			return nil, err
		}
		if flags&zmtp.FlagCommand != 0 {
			continue
		}
		msg = append(msg, body)
		if flags&zmtp.FlagMore == 0 {
			return msg, nil
		}
	}
}

// TestSyncForbiddenNull: a plain registry client (NULL, any address) that
// sends SYNC, as a joined server would, gets forbidden and loses its
// connection; the replicator never sees the message. Today's code handed
// the four SYNCs of an attack to join, which applied them.
func TestSyncForbiddenNull(t *testing.T) {
	repl := &syncCounter{}
	srv := startServer(t, registry.Config{Replicator: repl})
	c := dialRawNull(t, srv.Endpoint())
	c.send([]byte("SYNC"), []byte(`{"t":"hello","id":"evil","boot":"b"}`))
	rep, err := c.recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 2 || string(rep[0]) != "ERR" || !strings.Contains(string(rep[1]), `"forbidden"`) {
		t.Fatalf("SYNC from a client: %q, want a forbidden ERR", rep)
	}
	var ne net.Error
	if _, err := c.recv(); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("after a refused SYNC the connection stays open (read: %v)", err)
	}
	if n := repl.syncs.Load(); n != 0 {
		t.Fatalf("the replicator got %d SYNC messages of a client", n)
	}
	// Other clients are served as before.
	if _, _, err := newClient(t, srv, registry.ClientConfig{}).Ping(testutil.Context(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// curveSetup is a CURVE server whose handshake admits keys on any role
// list and whose Authorize consults the lists.
type curveSetup struct {
	mu     sync.Mutex
	roles  map[secure.PublicKey][]registry.Role
	server secure.KeyPair
}

func (cs *curveSetup) set(k secure.PublicKey, rs ...registry.Role) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(rs) == 0 {
		delete(cs.roles, k)
		return
	}
	cs.roles[k] = rs
}

func (cs *curveSetup) authorize(p registry.Peer, r registry.Role) bool {
	k, err := secure.ParsePublicKey(p.Key)
	if err != nil {
		return false
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, x := range cs.roles[k] {
		if x == r {
			return true
		}
	}
	return false
}

func newCurveSetup(t *testing.T) *curveSetup {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return &curveSetup{roles: map[secure.PublicKey][]registry.Role{}, server: kp}
}

func (cs *curveSetup) start(t *testing.T, cfg registry.Config) *registry.Server {
	cfg.Security = curve.Server(cs.server, secure.AuthorizerFunc(func(k secure.PublicKey) bool {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return len(cs.roles[k]) > 0
	}))
	cfg.Authorize = cs.authorize
	return startServer(t, cfg)
}

// key makes a client key holding roles rs.
func (cs *curveSetup) key(t *testing.T, rs ...registry.Role) secure.KeyPair {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	cs.set(kp.Public, rs...)
	return kp
}

func (cs *curveSetup) client(t *testing.T, srv *registry.Server, kp secure.KeyPair) *registry.Client {
	return newClient(t, srv, registry.ClientConfig{Security: curve.Client(kp, cs.server.Public)})
}

// TestRolesCurve: a key allowed as a client but not as a server cannot
// send SYNC (today any allowed client key could act as a join peer) nor
// JOIN (an admin verb); a server key may SYNC and PING; an admin key may
// JOIN.
func TestRolesCurve(t *testing.T) {
	repl := &syncCounter{}
	cs := newCurveSetup(t)
	srv := cs.start(t, registry.Config{Replicator: repl})
	ctx := testutil.Context(t, 10*time.Second)

	ck := cs.key(t, registry.RoleClient)
	if _, err := cs.client(t, srv, ck).Request(ctx, registry.VerbSync, map[string]string{"t": "hello"}); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("SYNC from a client key: %v, want forbidden", err)
	}
	// That SYNC cost its connection (what the client sends right after
	// may be lost with it): the rest on a connection of its own.
	cli := cs.client(t, srv, ck)
	if _, _, err := cli.Join(ctx, "10.0.0.1"); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("JOIN from a client key: %v, want forbidden", err)
	}
	if _, err := cli.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.2", Port: 80}); err != nil {
		t.Fatalf("REGISTER from a client key: %v", err)
	}
	if n := repl.syncs.Load() + repl.joins.Load(); n != 0 {
		t.Fatalf("the replicator got %d messages of a client key", n)
	}

	srvKey := cs.client(t, srv, cs.key(t, registry.RoleServer))
	if _, _, err := srvKey.Ping(ctx); err != nil {
		t.Fatalf("PING from a server key: %v", err)
	}
	if _, err := srvKey.Request(ctx, registry.VerbLookup, map[string]string{"name": "web"}); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("LOOKUP from a key that is only a server's: %v, want forbidden", err)
	}
	// The counter answers nothing: the request times out.
	short := testutil.Context(t, 500*time.Millisecond)
	_, _ = srvKey.Request(short, registry.VerbSync, map[string]string{"t": "hello"})
	testutil.Eventually(t, 5*time.Second, "the server key's SYNC reaches the replicator", func() bool { return repl.syncs.Load() == 1 })

	admin := cs.client(t, srv, cs.key(t, registry.RoleAdmin))
	if _, _, err := admin.Join(ctx, "10.0.0.1"); err != nil {
		t.Fatalf("JOIN from an admin key: %v", err)
	}
}

// TestJoinForbiddenNull: under NULL with the default Authorize, JOIN and
// LEAVE are for loopback peers only; a peer from the network gets
// forbidden (today's server dialled whatever it was told), while its
// client verbs still work.
func TestJoinForbiddenNull(t *testing.T) {
	ip := testutil.NonLoopbackIP(t)
	repl := &syncCounter{}
	srv := startServerAt(t, registry.Config{Replicator: repl}, "tcp://"+ip+":0")
	ctx := testutil.Context(t, 10*time.Second)
	c := newClient(t, srv, registry.ClientConfig{})
	if _, _, err := c.Join(ctx, "10.0.0.1"); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("JOIN from %s: %v, want forbidden", ip, err)
	}
	if _, err := c.Request(ctx, registry.VerbLeave, map[string]string{"peer": "10.0.0.1"}); !errors.Is(err, registry.ErrForbidden) {
		t.Fatalf("LEAVE from %s: %v, want forbidden", ip, err)
	}
	if _, err := c.Lookup(ctx, "web"); err != nil {
		t.Fatalf("LOOKUP from %s: %v", ip, err)
	}
	if n := repl.joins.Load(); n != 0 {
		t.Fatalf("the replicator got %d JOINs from the network", n)
	}
	// From loopback, JOIN is the replicator's.
	lo := startServer(t, registry.Config{Replicator: repl})
	if _, _, err := newClient(t, lo, registry.ClientConfig{}).Join(ctx, "10.0.0.1"); err != nil {
		t.Fatalf("JOIN from loopback: %v", err)
	}
}

// TestDefaultAuthorize: the safe default, role by role.
func TestDefaultAuthorize(t *testing.T) {
	local := registry.Peer{}
	lo := registry.Peer{Addr: netip.MustParseAddrPort("127.0.0.1:4000")}
	lo6 := registry.Peer{Addr: netip.MustParseAddrPort("[::1]:4000")}
	far := registry.Peer{Addr: netip.MustParseAddrPort("192.0.2.7:4000"), Key: "k"}
	for _, c := range []struct {
		p    registry.Peer
		r    registry.Role
		want bool
	}{
		{far, registry.RoleClient, true}, {far, registry.RoleServer, false}, {far, registry.RoleAdmin, false},
		{lo, registry.RoleServer, false}, {lo, registry.RoleAdmin, true}, {lo6, registry.RoleAdmin, true},
		{local, registry.RoleAdmin, true}, {local, registry.RoleServer, false}, {local, registry.Role(9), false},
	} {
		if got := registry.DefaultAuthorize(c.p, c.r); got != c.want {
			t.Errorf("DefaultAuthorize(%+v, %s) = %v", c.p, c.r, got)
		}
	}
	if s := registry.Role(9).String(); s != "role(9)" {
		t.Errorf("Role(9): %s", s)
	}
}

// TestRecheckDropsRevoked: once a key is off every list, Recheck closes its
// established connection at once (it does not wait for the peer's next
// request), and the reconnect fails its handshake; a key still on a list
// keeps its connection.
func TestRecheckDropsRevoked(t *testing.T) {
	cs := newCurveSetup(t)
	srv := cs.start(t, registry.Config{})
	revoked, kept := cs.key(t, registry.RoleClient), cs.key(t, registry.RoleServer, registry.RoleClient)
	dial := func(kp secure.KeyPair) *zmtp.Socket {
		s, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Config{Security: curve.Client(kp, cs.server.Public),
			RecvTimeout: 5 * time.Second, ReconnectInterval: 20 * time.Millisecond, Linger: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Connect(srv.Endpoint()); err != nil {
			t.Fatal(err)
		}
		if rep := roundTrip(t, s, []byte("PING")); string(rep[0]) != "OK" {
			t.Fatalf("PING: %q", rep)
		}
		return s
	}
	a, b := dial(revoked), dial(kept)
	failed := a.ConnectFailed()
	cs.set(revoked.Public)
	start := time.Now()
	srv.Recheck()
	select {
	case <-failed:
		t.Logf("revoked key's connection closed and its reconnect refused %v after Recheck", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked key's connection survived Recheck")
	}
	if err := a.ConnectError(); !errors.Is(err, zmtp.ErrPeerError) {
		t.Logf("reconnect error: %v", err)
	}
	if rep := roundTrip(t, b, []byte("PING")); string(rep[0]) != "OK" {
		t.Fatalf("PING of the kept key after Recheck: %q", rep)
	}
}
