package resume

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestResume: a resumed connection comes back from Accept once its next
// bytes arrive, those bytes first; Close closes one still waiting.
func TestResume(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, time.Minute)
	defer l.Close()
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	l.Resume(server)
	client.Write([]byte("next"))
	again, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(again, buf); err != nil || string(buf) != "next" {
		t.Fatalf("read %q, %v", buf, err)
	}

	l.Resume(again) // waiting for bytes that never come
	l.Close()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(buf); err == nil {
		t.Fatal("a resumed connection outlived Close")
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close")
	}
}

func TestPrefixConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	p := &PrefixConn{Conn: b, Prefix: []byte("ab")}
	go a.Write([]byte("cd"))
	buf := make([]byte, 1)
	var got []byte
	for len(got) < 4 {
		n, err := p.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "abcd" {
		t.Fatalf("%q", got)
	}
}
