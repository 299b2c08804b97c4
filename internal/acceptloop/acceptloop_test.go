package acceptloop

import (
	"net"
	"testing"
)

func TestServeHandsOverAndStopsOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan net.Conn, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ln, nil, func(c net.Conn) { got <- c }) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-got
	s.Close()
	ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close = %v, want nil", err)
	}
}
