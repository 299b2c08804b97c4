package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hydra-net/hydra/internal/acceptloop"
)

// udpReadSize is the largest query read over UDP; a longer datagram is cut
// by the kernel and answered FORMERR.
const udpReadSize = 4096

// Server answers DNS over UDP and TCP on one address. Listen binds it,
// Serve runs it, Close (or Serve's ctx) stops it.
type Server struct {
	cfg  Config
	log  *slog.Logger
	resp *Responder
	udp  *net.UDPConn
	tcp  net.Listener
	slot chan struct{} // one token per TCP connection served

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// Listen checks cfg and binds its Addr for UDP and TCP (a port 0 picks one
// free for both). An address that cannot be bound is an error that wraps
// the system's (errors.Is(err, syscall.EADDRINUSE) for a port taken).
func Listen(cat Catalog, cfg Config) (*Server, error) {
	resp, err := NewResponder(cat, cfg)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, resp: resp, conns: map[net.Conn]struct{}{},
		closed: make(chan struct{})}
	if cfg.MaxTCPConns > 0 {
		s.slot = make(chan struct{}, cfg.MaxTCPConns)
	}
	host, port, _ := net.SplitHostPort(cfg.Addr)
	for try := 0; ; try++ {
		if s.tcp, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
		bound := net.JoinHostPort(host, strconv.Itoa(s.tcp.Addr().(*net.TCPAddr).Port))
		ua, rerr := net.ResolveUDPAddr("udp", bound)
		if rerr == nil {
			s.udp, err = net.ListenUDP("udp", ua)
		} else {
			err = rerr
		}
		if err == nil {
			return s, nil
		}
		s.tcp.Close()
		if port != "0" || try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("dns: %w", err)
		}
		// Port 0: the kernel's TCP choice is taken for UDP; pick another.
	}
}

// Addr is the HOST:PORT served (UDP and TCP), with the real port.
func (s *Server) Addr() string { return s.tcp.Addr().String() }

// Serve answers until ctx ends or Close is called; it then returns nil
// once every connection is closed.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	workers := max(1, runtime.GOMAXPROCS(0))
	for range workers {
		s.wg.Go(s.serveUDP)
	}
	s.wg.Go(func() { acceptloop.Serve(s.tcp, s.log, s.accept) })
	<-s.closed
	s.wg.Wait()
	return nil
}

// Close stops the server; it may be called more than once, and before Serve.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.udp.Close()
		s.tcp.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	return nil
}

// serveUDP is one of the UDP workers: each reads, answers and writes with
// its own buffers, so the answer path shares nothing but the catalog view.
func (s *Server) serveUDP() {
	in := make([]byte, udpReadSize)
	out := make([]byte, 0, 8192) // room for the uncompressed answer PackBuffer wants before it compresses
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors of earlier writes and the like: the next packet
		}
		reply := s.resp.Respond(out, in[:n], true)
		if reply != nil {
			s.udp.WriteToUDPAddrPort(reply, from)
		}
		if cap(reply) > cap(out) {
			out = reply[:0]
		}
	}
}

// accept runs on the accept loop: it waits for a connection slot (so more
// than MaxTCPConns wait in the kernel's backlog) and serves c on its own
// goroutine.
func (s *Server) accept(c net.Conn) {
	if s.slot != nil {
		select {
		case s.slot <- struct{}{}:
		case <-s.closed:
			c.Close()
			return
		}
	}
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		c.Close()
		return
	default:
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
			if s.slot != nil {
				<-s.slot
			}
		}()
		s.serveTCP(c)
	})
}

// serveTCP answers the length-prefixed queries of c in order until it
// closes, sends something that is not a query, or idles for TCPIdle.
func (s *Server) serveTCP(c net.Conn) {
	var lenBuf [2]byte
	in := make([]byte, 0, 512)
	out := make([]byte, 2, 512)
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if cap(in) < n {
			in = make([]byte, n)
		}
		in = in[:n]
		if _, err := io.ReadFull(c, in); err != nil {
			return
		}
		reply := s.resp.Respond(out[2:], in, false)
		if reply == nil {
			return
		}
		// Respond appended to out[2:2]: the length goes in front, in place
		// when it did not have to grow.
		if &reply[:1][0] != &out[2:3][0] {
			out = append(make([]byte, 2, 2+len(reply)), reply...)
		} else {
			out = out[:2+len(reply)]
		}
		binary.BigEndian.PutUint16(out, uint16(len(reply)))
		c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdle))
		if _, err := c.Write(out); err != nil {
			return
		}
		out = out[:2]
	}
}
