package tunnel_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/tunnel"
)

func ctxT(t testing.TB) context.Context { return testutil.Context(t, 10*time.Second) }

func newKey(t testing.TB) secure.KeyPair {
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// testNode is a whole server with tunnels (package node) in this process,
// and a registry client of it.
type testNode struct {
	srv  *registry.Server
	tun  *tunnel.Tunnels
	kp   secure.KeyPair
	addr string // HOST:PORT of the shared port
	cl   *registry.Client
}

// startNode runs a node with key pair kp and tunnels cfg (cfg.Allow becomes
// the node's Allow; short redials unless cfg sets them).
func startNode(t testing.TB, kp secure.KeyPair, cfg tunnel.Config) *testNode {
	t.Helper()
	log := testutil.Logger(t)
	if cfg.RedialMax == 0 {
		cfg.RedialMax = 500 * time.Millisecond
	}
	if cfg.RedialMin == 0 {
		cfg.RedialMin = 50 * time.Millisecond
	}
	n := nodetest.Start(t, node.Config{Logger: log, Keys: &kp, Allow: cfg.Allow, Tunnel: cfg})
	cl := n.Client(t)
	return &testNode{srv: n.Server(), tun: n.Tunnels(), kp: kp, addr: n.Addr(), cl: cl}
}

// echoServer accepts connections and echoes them until EOF, then
// half-closes.
func echoServer(t testing.TB) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

func register(t testing.TB, c *registry.Client, name string, a *net.TCPAddr) *registry.Registration {
	t.Helper()
	r, err := c.Register(ctxT(t), registry.Service{Name: name, Host: a.IP.String(), Port: a.Port, Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// proxied waits until c's server lists a tunnel proxy for name and
// returns it.
func proxied(t testing.TB, c *registry.Client, name string) registry.Entry {
	t.Helper()
	var got registry.Entry
	testutil.Eventually(t, 20*time.Second, "a tunnel proxy for "+name, func() bool {
		es, err := c.Lookup(ctxT(t), name)
		if err != nil {
			return false
		}
		for _, e := range es {
			if e.Meta[tunnel.MetaPeer] != "" {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

// echoRoundTrip sends msg to addr, half-closes, and returns all it read.
func echoRoundTrip(t testing.TB, addr string, msg []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if e := <-werr; err == nil {
		err = e
	}
	return got, err
}

// killRelay is a TCP relay whose connections can all be killed at once
// (reset, not closed cleanly), and which records what the dialling side
// sent and counts the connections it took: what the security tests need
// beyond testutil.Relay.
type killRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	rec    [][]byte // per connection, the bytes from the dialler
	accept int
	fwd    int64 // bytes forwarded, both ways
}

func newKillRelay(t testing.TB, target string) *killRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &killRelay{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); r.kill() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			i := len(r.rec)
			r.rec = append(r.rec, nil)
			r.conns = append(r.conns, c, u)
			r.accept++
			r.mu.Unlock()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						r.mu.Lock()
						r.fwd += int64(n)
						if len(r.rec[i]) < 4096 {
							r.rec[i] = append(r.rec[i], buf[:n]...)
						}
						r.mu.Unlock()
						if _, err := u.Write(buf[:n]); err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
				u.Close()
			}()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 {
						r.mu.Lock()
						r.fwd += int64(n)
						r.mu.Unlock()
						if _, err := c.Write(buf[:n]); err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
				u.Close()
			}()
		}
	}()
	return r
}

func (r *killRelay) Addr() string { return r.ln.Addr().String() }

// kill resets every connection through the relay (the link dies).
func (r *killRelay) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	r.conns = nil
}

func (r *killRelay) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accept
}

func (r *killRelay) forwarded() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fwd
}
