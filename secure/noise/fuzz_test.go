package noise

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	flynn "github.com/flynn/noise"

	"github.com/hydra-net/hydra/secure"
)

// fakeConn is a net.Conn reading from a byte slice in chunks (so reads
// straddle messages and records) and discarding writes.
type fakeConn struct {
	in    []byte
	chunk int
	out   bytes.Buffer
}

func (c *fakeConn) Read(b []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(c.in), max(c.chunk, 1))
	copy(b, c.in[:n])
	c.in = c.in[n:]
	return n, nil
}
func (c *fakeConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 2} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// genuineFirstFlight is what a real initiator sends first (preamble and
// message 1) to the fuzz responder, with deterministic keys.
func genuineFirstFlight(t testing.TB, pinned bool, c Cipher) []byte {
	sk, ck := fuzzKeys(t)
	cfg := Config{Static: ck, Peers: secure.AllowAny(), Cipher: c, rand: detRand(3), Payload: []byte("payload")}
	if pinned {
		cfg.RemoteKey = sk.Public
	}
	a, b := net.Pipe()
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 4096)
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := b.Read(buf)
		got <- buf[:n]
		b.Close()
	}()
	Initiate(context.Background(), a, cfg)
	return <-got
}

// FuzzNoiseHandshake feeds arbitrary bytes, delivered in chunks of
// data[0] bytes, to the responder side of the handshake. Nothing but
// handshakes whose messages genuinely decrypt may succeed, and only for an
// authorized key.
func FuzzNoiseHandshake(f *testing.F) {
	for _, pinned := range []bool{true, false} {
		for _, c := range []Cipher{CipherAESGCM, CipherChaChaPoly} {
			f.Add(append([]byte{7}, genuineFirstFlight(f, pinned, c)...))
		}
	}
	f.Add([]byte("\x01HYNZ\x01I\x41\x00"))
	f.Add([]byte("\x03GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{1, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F})
	sk, ck := fuzzKeys(f)
	r, err := NewResponder(Config{Static: sk, Peers: secure.NewAllowList(ck.Public), rand: detRand(4)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		nc := &fakeConn{in: data[1:], chunk: int(data[0])}
		c, err := r.respond(nc)
		if err != nil {
			return
		}
		if !c.PeerKey().Equal(ck.Public) {
			t.Fatalf("handshake completed for unauthorized key %s", c.PeerKey())
		}
	})
}

// fuzzCipherStates returns matching send and receive states of a fixed
// key for the record fuzzer.
func fuzzCipherStates(c Cipher) (send, recv *flynn.CipherState) {
	var k [32]byte
	copy(k[:], "noise record reader fuzz key....")
	return flynn.UnsafeNewCipherState(suiteFor(c), k, 0), flynn.UnsafeNewCipherState(suiteFor(c), k, 0)
}

// FuzzNoiseRecordReader drives Conn.Read. data[0] picks the read chunk
// size, data[1] the Read buffer size; data[2] even: the rest is the raw
// stream; odd: the rest is split into plaintext and a mutation mask, the
// plaintext is sealed into genuine records and the mask XORed over them.
// Read must never panic, never return bytes that were not sealed, and
// return everything when nothing was mutated.
func FuzzNoiseRecordReader(f *testing.F) {
	f.Add([]byte{3, 10, 1, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{255, 255, 1, 'a', 'b', 'c', 'd', 0, 0, 0, 1})
	f.Add([]byte{1, 1, 0, 0, 20, 1, 2, 3})
	f.Add([]byte{7, 200, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		chunk, rsize, mode, rest := int(data[0]), max(int(data[1]), 1), data[2], data[3:]
		send, recv := fuzzCipherStates(CipherChaChaPoly)
		var stream, plain []byte
		mutated := false
		if mode%2 == 0 {
			stream = rest
		} else {
			var mask []byte
			plain, mask = rest[:len(rest)/2], rest[len(rest)/2:]
			// Records of 1 to 64 bytes, sizes taken from the plaintext.
			for p := plain; len(p) > 0; {
				n := min(len(p), int(p[0]%64)+1)
				rec, _ := send.Encrypt(binary.BigEndian.AppendUint16(nil, uint16(n+tagSize)), nil, p[:n])
				stream = append(stream, rec...)
				p = p[n:]
			}
			for i, m := range mask {
				if i < len(stream) && m != 0 {
					stream[i] ^= m
					mutated = true
				}
			}
		}
		log := slog.New(slog.DiscardHandler)
		c := newConn(&fakeConn{in: stream, chunk: chunk}, log, send, recv, secure.PublicKey{}, nil, "fuzz")
		var got []byte
		buf := make([]byte, rsize)
		for i := 0; i < 1<<16; i++ {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if mode%2 == 1 {
			if !bytes.HasPrefix(plain, got) {
				t.Fatalf("Read returned bytes that were never sealed")
			}
			if !mutated && !bytes.Equal(got, plain) {
				t.Fatalf("unmutated stream: read %d of %d bytes", len(got), len(plain))
			}
		}
	})
}
