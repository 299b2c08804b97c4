package testutil

import (
	"io"
	"net"
	"testing"
	"time"
)

// EchoServer serves an echo on 127.0.0.1 until the test ends: each
// connection gets back what it sends, then a half-close after its EOF.
func EchoServer(t testing.TB) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go ServeEcho(ln)
	return ln.Addr().(*net.TCPAddr)
}

// ServeEcho echoes every connection ln accepts until ln is closed.
func ServeEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
			if tc, ok := c.(interface{ CloseWrite() error }); ok {
				tc.CloseWrite()
			}
		}()
	}
}

// EchoRoundTrip sends msg to addr, half-closes, and returns all it read
// back (within 30s).
func EchoRoundTrip(addr string, msg []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
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
