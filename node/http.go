package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hydra-net/hydra/consulapi"
	"github.com/hydra-net/hydra/internal/resume"

	"github.com/hydra-net/hydra/internal/netaddr"
)

// DefaultHTTPAddr is the HTTP listener's address when cmd/hydra-server's
// --http is not given: Consul's agent address, so that unmodified Consul
// clients find it.
const DefaultHTTPAddr = "127.0.0.1:8500"

// Defaults of HTTPConfig's bounds.
const (
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPIdleTimeout       = 2 * time.Minute
	DefaultHTTPMaxHeaderBytes    = 64 << 10
	DefaultHTTPMaxBodyBytes      = 1 << 20
	DefaultHTTPShutdownGrace     = 2 * time.Second
	// DefaultHTTPMaxConnsPerClient is Consul's http_max_conns_per_client.
	DefaultHTTPMaxConnsPerClient = 200
	DefaultHTTPWriteStall        = 10 * time.Second
)

// HTTPConfig is the node's HTTP listener (the Consul API, metrics, the
// status page: whatever is mounted with Node.HandleHTTP).
type HTTPConfig struct {
	// Addr is HOST:PORT to listen on (port 0: any free port, see
	// Node.HTTPAddr). Default "": no HTTP listener.
	Addr string
	// Optional makes a failure to listen a warning instead of New's error:
	// the node runs without HTTP. cmd/hydra-server sets it when Addr is
	// the default (DefaultHTTPAddr), so that a second server on a machine
	// (or many in tests) still starts. Default false: an error.
	Optional bool
	// ReadHeaderTimeout bounds the time a client takes to send a request's
	// headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle that long. Default
	// 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers. Default 64 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request's body; a bigger one fails to read
	// (413 from the handlers that read bodies). Default 1 MiB.
	MaxBodyBytes int64
	// TokenFile holds the tokens that let clients beyond loopback write
	// (and read): one a line, at least 16 bytes, '#' comments. Each is one
	// client identity: a service registered with it is changed only with
	// it (or from loopback). Re-read by Node.Reload (SIGHUP). Default "":
	// no tokens, so no writes from beyond loopback.
	TokenFile string
	// RemoteReads lets clients beyond loopback read without a token.
	// Default false: they get 403 unless they hold a token.
	RemoteReads bool
	// MaxConnsPerClient bounds the connections one client address (IPv4
	// address, IPv6 /64) holds open, blocking queries included; past it a
	// connection is answered 429 Too Many Requests and closed, as Consul's
	// http_max_conns_per_client does. Loopback clients count too. Default
	// 200 (Consul's).
	MaxConnsPerClient int
	// WriteStall bounds how long a write of a response (each 64 KiB of
	// it) may make no progress, the client not reading: the connection is
	// then closed. Not the whole response, so blocking queries keep their
	// wait. Default 10s.
	WriteStall time.Duration
	// ShutdownGrace is how long Run waits for requests in flight when it
	// stops (blocking queries are told to return at once). Default 2s.
	ShutdownGrace time.Duration
}

func (c HTTPConfig) withDefaults() HTTPConfig {
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultHTTPReadHeaderTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultHTTPIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultHTTPMaxHeaderBytes
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultHTTPMaxBodyBytes
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultHTTPShutdownGrace
	}
	if c.MaxConnsPerClient == 0 {
		c.MaxConnsPerClient = DefaultHTTPMaxConnsPerClient
	}
	if c.WriteStall == 0 {
		c.WriteStall = DefaultHTTPWriteStall
	}
	return c
}

// Validate reports the first problem of c, naming its fields.
func (c HTTPConfig) Validate() error {
	if c.Addr != "" {
		host, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return fmt.Errorf("Addr %q: want HOST:PORT: %w", c.Addr, err)
		}
		if host != "" {
			if err := netaddr.CheckHost(host); err != nil {
				return fmt.Errorf("Addr %q: %w", c.Addr, err)
			}
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("Addr %q: bad port: %w", c.Addr, err)
		}
	}
	switch {
	case c.ReadHeaderTimeout < 0:
		return fmt.Errorf("ReadHeaderTimeout %v is negative", c.ReadHeaderTimeout)
	case c.IdleTimeout < 0:
		return fmt.Errorf("IdleTimeout %v is negative", c.IdleTimeout)
	case c.MaxHeaderBytes < 0:
		return fmt.Errorf("MaxHeaderBytes %d is negative", c.MaxHeaderBytes)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.TokenFile != "" && c.Addr == "":
		return errors.New("TokenFile needs Addr (HTTP is off)")
	case c.ShutdownGrace < 0:
		return fmt.Errorf("ShutdownGrace %v is negative", c.ShutdownGrace)
	case c.MaxConnsPerClient < 0:
		return fmt.Errorf("MaxConnsPerClient %d is negative", c.MaxConnsPerClient)
	case c.WriteStall < 0:
		return fmt.Errorf("WriteStall %v is negative", c.WriteStall)
	}
	return nil
}

// httpServer is the node's listener and what is mounted on it.
type httpServer struct {
	cfg    HTTPConfig
	mux    *http.ServeMux
	access *httpAccess
	api    *consulapi.API
	ln     net.Listener // nil: off
	limit  *connLimitListener
	srv    *http.Server
	ctx    context.Context // handlers' base context: ends when Run stops
	cancel context.CancelFunc
}

// bindHTTP listens on cfg.Addr (New's job, so HTTPAddr is known before
// Run).
func (n *Node) bindHTTP() error {
	c := n.cfg.HTTP.withDefaults()
	h := &httpServer{cfg: c, mux: http.NewServeMux(), access: &httpAccess{remoteReads: c.RemoteReads}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	n.http = h
	if c.Addr == "" {
		return nil
	}
	if c.TokenFile != "" {
		t, err := readTokens(c.TokenFile)
		if err != nil {
			return &ConfigError{"HTTP.TokenFile", err}
		}
		h.access.tokens.Store(&t)
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		if !c.Optional {
			return &ConfigError{"HTTP.Addr", fmt.Errorf("listen %s: %w", c.Addr, err)}
		}
		n.log.Warn("http: not listening (set --http to another HOST:PORT, or to \"\" to turn HTTP off)",
			"addr", c.Addr, "err", err)
	}
	var rl *resume.Listener
	var resumeFn func(net.Conn)
	if ln != nil {
		h.limit = newConnLimitListener(ln, c.MaxConnsPerClient, c.WriteStall, n.log)
		rl = resume.New(h.limit, c.IdleTimeout)
		resumeFn = rl.Resume
	}
	api, err := consulapi.New(consulapi.Config{Catalog: n.cat, Local: n.srv.Local(), ServerID: n.srv.ID(),
		NodeAddr: nodeAddr(c.Addr, n.cfg.Endpoint), Version: n.cfg.Version, Identity: requestIdentity, Logger: n.log,
		Resume: resumeFn})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return &ConfigError{"HTTP", err}
	}
	h.api = api
	api.Mount(n.HandleHTTP)
	if ln == nil {
		return nil
	}
	h.ln = rl
	h.srv = &http.Server{
		Handler:           h.handler(),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return h.ctx },
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	n.log.Info("http: listening", "addr", ln.Addr().String())
	return nil
}

func (h *httpServer) handler() http.Handler {
	return http.MaxBytesHandler(h.access.middleware(h.mux), h.cfg.MaxBodyBytes)
}

// nodeAddr is the address the Consul API gives this node: the HTTP
// listener's host, else the registry's, else 127.0.0.1 (a wildcard says
// nothing).
func nodeAddr(httpAddr, endpoint string) string {
	for _, hp := range []string{httpAddr, strings.TrimPrefix(endpoint, "tcp://")} {
		if host, _, err := net.SplitHostPort(hp); err == nil {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				return host
			}
		}
	}
	return "127.0.0.1"
}

// HTTPHandler is everything the HTTP listener serves, with its access
// rule and bounds, for tests that call it directly (a request with a
// RemoteAddr beyond loopback).
func (n *Node) HTTPHandler() http.Handler { return n.http.handler() }

// reloadTokens re-reads HTTP.TokenFile; a bad file keeps the old tokens.
func (h *httpServer) reloadTokens() (bool, error) {
	if h.cfg.TokenFile == "" || h.ln == nil {
		return false, nil
	}
	t, err := readTokens(h.cfg.TokenFile)
	if err != nil {
		return true, err
	}
	h.access.tokens.Store(&t)
	return true, nil
}

// HandleHTTP mounts h on the node's HTTP listener at pattern (an
// http.ServeMux pattern, "GET /v1/agent/self"). Call it before Run; it
// works when HTTP is off too (nothing is served). Requests' contexts end
// when Run stops, so that long requests (blocking queries) return.
func (n *Node) HandleHTTP(pattern string, h http.Handler) { n.http.mux.Handle(pattern, h) }

// Consul is the Consul agent API mounted on the HTTP listener, nil when
// HTTP is off (Config.HTTP.Addr ""): its Waiting is the blocking queries
// parked now.
func (n *Node) Consul() *consulapi.API { return n.http.api }

// HTTPAddr is the HTTP listener's HOST:PORT (the real port of a :0), ""
// when it is off.
func (n *Node) HTTPAddr() string {
	if n.http.ln == nil {
		return ""
	}
	return n.http.ln.Addr().String()
}

// serveHTTP serves until stopHTTP; it returns at once when HTTP is off.
func (h *httpServer) serve() error {
	if h.ln == nil {
		return nil
	}
	if err := h.srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// stop ends long requests, waits up to ShutdownGrace for the others, then
// closes what is left.
func (h *httpServer) stop() {
	h.cancel()
	if h.api != nil {
		h.api.Close()
	}
	if h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownGrace)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.srv.Close()
	}
}

// close releases the listener of a node that never ran.
func (h *httpServer) close() {
	h.cancel()
	if h.api != nil {
		h.api.Close()
	}
	if h.srv != nil {
		h.srv.Close()
	}
	if h.ln != nil {
		h.ln.Close()
	}
}
