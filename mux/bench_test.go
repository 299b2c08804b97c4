package mux

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/yamux"
)

// Throughput of one bulk stream, by size of the sender's writes. Compare
// BenchmarkSession (one stream over a session over TCP loopback) with
// BenchmarkRawTCP (the same writes on the TCP connection itself) and
// BenchmarkYamux (plain yamux, same 8 MiB window, no coalescing layer)
// from one run; BenchmarkForward adds the proxy hops of a tunnelled
// connection (TCP client → Forwarder → session → StreamServer → TCP
// service), without encryption.
//
//	go test -run '^$' -bench . -benchtime 2s ./mux/

var benchSizes = []struct {
	name string
	size int
}{
	{"4KiB", 4 << 10},
	{"64KiB", 64 << 10},
	{"1MiB", 1 << 20},
}

func BenchmarkRawTCP(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			c, s := tcpPair(b)
			defer c.Close()
			defer s.Close()
			benchStream(b, c, s, bs.size)
		})
	}
}

func BenchmarkSession(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			cs, ss := sessionPair(b, nil, nil)
			st, err := cs.OpenStream()
			if err != nil {
				b.Fatal(err)
			}
			st.Write([]byte{0}) // so that the peer can accept it
			sst, err := ss.AcceptStream()
			if err != nil {
				b.Fatal(err)
			}
			sst.Read(make([]byte, 1))
			benchStream(b, st, sst, bs.size)
		})
	}
}

func BenchmarkYamux(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			cc, sc := tcpPair(b)
			cfg := yamux.DefaultConfig()
			cfg.LogOutput = io.Discard
			cfg.MaxStreamWindowSize = DefaultStreamWindow
			yc, err := yamux.Client(cc, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer yc.Close()
			ys, err := yamux.Server(sc, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer ys.Close()
			st, err := yc.OpenStream()
			if err != nil {
				b.Fatal(err)
			}
			st.Write([]byte{0})
			sst, err := ys.AcceptStream()
			if err != nil {
				b.Fatal(err)
			}
			sst.Read(make([]byte, 1))
			benchStream(b, yamuxCloseWriter{st}, sst, bs.size)
		})
	}
}

// yamuxCloseWriter: a yamux stream's Close is a half-close.
type yamuxCloseWriter struct{ *yamux.Stream }

func (y yamuxCloseWriter) CloseWrite() error { return y.Stream.Close() }

func BenchmarkForward(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			// The service is the benchmark's reader.
			svc, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			cs, ss := sessionPair(b, nil, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv := &StreamServer{Dial: func(ctx context.Context, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", svc.Addr().String())
			}}
			go srv.Serve(ctx, ss)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			f := &Forwarder{Target: "sink", Open: func(context.Context) (net.Conn, error) { return cs.Open() }}
			go f.Serve(ctx, ln)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s, err := svc.Accept()
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchStream(b, c, s, bs.size)
		})
	}
}

// benchStream writes b.N buffers of size bytes on w and times until r has
// read them all.
func benchStream(b *testing.B, w, r net.Conn, size int) {
	done := make(chan int64, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var n int64
		for {
			k, err := r.Read(buf)
			n += int64(k)
			if err != nil {
				done <- n
				return
			}
		}
	}()
	data := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	w.(interface{ CloseWrite() error }).CloseWrite()
	n := <-done
	b.StopTimer()
	if want := int64(b.N) * int64(size); n != want {
		b.Fatalf("read %d bytes, want %d", n, want)
	}
}
