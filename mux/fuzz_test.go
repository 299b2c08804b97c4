package mux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzParseHeader: ParseHeader never panics, a parsed header re-encodes
// to the same bytes, ReadHeader agrees with it, and every truncated prefix
// of a valid header is io.ErrUnexpectedEOF.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("\x01\x03web"))
	f.Add([]byte("\x01\x0b10.0.0.5:80trailing data"))
	f.Add([]byte("\x02\x01x"))
	f.Add([]byte("\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		target, n, err := ParseHeader(b)
		rtarget, rerr := ReadHeader(bytes.NewReader(b))
		if (err == nil) != (rerr == nil) || target != rtarget {
			t.Fatalf("ParseHeader %q %v, ReadHeader %q %v", target, err, rtarget, rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrBadHeader) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v is neither ErrBadHeader nor io.ErrUnexpectedEOF", err)
			}
			return
		}
		enc, err := AppendHeader(nil, target)
		if err != nil || !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoded % x, %v; parsed from % x", enc, err, b[:n])
		}
		for i := range n {
			if _, _, err := ParseHeader(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("prefix of %d bytes: %v", i, err)
			}
		}
	})
}

// FuzzSessionInput feeds arbitrary bytes, split in two writes at an
// arbitrary point (so frame headers straddle reads), to a server session
// whose streams are accepted and read. The session must not panic, must
// end when the input does, and must leave nothing running.
func FuzzSessionInput(f *testing.F) {
	h := func(typ uint8, flags uint16, id, length uint32) []byte {
		return appendHeader(nil, typ, flags, id, length)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(h(typePing, flagSYN, 0, 7), uint16(5))
	f.Add(cat(h(typeWindowUpdate, flagSYN, 1, 0), h(typeData, 0, 1, 5), []byte("hello"), h(typeWindowUpdate, flagFIN, 1, 0)), uint16(14))
	f.Add(cat(h(typeData, flagSYN|flagFIN, 3, 3), []byte("abc")), uint16(12))
	f.Add(cat(h(typeWindowUpdate, flagSYN, 1, 0), h(typeWindowUpdate, flagRST, 1, 0), h(typeData, 0, 1, 2), []byte("xy")), uint16(30))
	f.Add(h(typeData, 0, 9, 8<<20+1), uint16(3))
	f.Add(h(typeGoAway, 0, 0, 1), uint16(0))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint16(4))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		a, b := net.Pipe()
		s, err := Server(b, &Config{MaxStreams: 8, AcceptBacklog: 4})
		if err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, a) // whatever the session answers
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				st, err := s.AcceptStream()
				if err != nil {
					return
				}
				go func() {
					io.Copy(io.Discard, st)
					st.Close()
				}()
			}
		}()
		cut := min(int(split), len(in))
		a.Write(in[:cut])
		a.Write(in[cut:])
		a.Close()
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("session outlived its connection")
		}
		s.Close()
		<-done
	})
}
