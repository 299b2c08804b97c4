package abuse

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// A raw ZMTP 3.1 DEALER over NULL, written by hand so that an attacker
// controls every byte: which source address it binds, whether it ever
// reads, how fast its bytes go out.

// attackerIP returns the i-th attacker source address, 127.0.0.2 to
// 127.0.0.9 (i modulo 8).
func attackerIP(i int) net.IP { return net.IPv4(127, 0, 0, byte(2+i%8)) }

// dialFrom opens a TCP connection to addr from source address ip.
func dialFrom(ip net.IP, addr string) (*net.TCPConn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// greeting is a ZMTP 3.1 NULL client greeting (64 bytes).
func greeting() []byte {
	g := make([]byte, 64)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 1
	copy(g[12:], "NULL")
	return g
}

// readyCommand is the NULL READY command of a DEALER.
func readyCommand() []byte {
	body := []byte("\x05READY")
	body = append(body, 11)
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, 6)
	body = append(body, "DEALER"...)
	return appendFrame(nil, 0x04, body)
}

// appendFrame appends one frame with flags (MORE 1, COMMAND 4) to b.
func appendFrame(b []byte, flags byte, body []byte) []byte {
	if len(body) > 255 {
		b = append(b, flags|0x02)
		b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	} else {
		b = append(b, flags, byte(len(body)))
	}
	return append(b, body...)
}

// appendMsg appends a message of frames to b.
func appendMsg(b []byte, frames ...[]byte) []byte {
	for i, f := range frames {
		var more byte
		if i < len(frames)-1 {
			more = 1
		}
		b = appendFrame(b, more, f)
	}
	return b
}

// request is a DEALER request: the verb and its JSON body.
func request(verb, body string) []byte {
	return appendMsg(nil, []byte(verb), []byte(body))
}

// peer is a raw DEALER connection past its handshake.
type peer struct {
	c *net.TCPConn
	r *bufio.Reader
}

// dialPeer connects from ip, sends the greeting and READY and, when read
// is true, reads the server's greeting and READY; a peer that never reads
// leaves them in its socket buffer.
func dialPeer(ip net.IP, addr string, read bool) (*peer, error) {
	c, err := dialFrom(ip, addr)
	if err != nil {
		return nil, err
	}
	p := &peer{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	if _, err := c.Write(append(greeting(), readyCommand()...)); err != nil {
		c.Close()
		return nil, err
	}
	if !read {
		return p, nil
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(p.r, make([]byte, 64)); err != nil {
		c.Close()
		return nil, fmt.Errorf("server greeting: %w", err)
	}
	if _, _, err := p.frame(); err != nil { // READY
		c.Close()
		return nil, fmt.Errorf("server READY: %w", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return p, nil
}

func (p *peer) Close() error { return p.c.Close() }

// frame reads one frame: its flags and body.
func (p *peer) frame() (byte, []byte, error) {
	flags, err := p.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	var n uint64
	if flags&0x02 != 0 {
		var b [8]byte
		if _, err := io.ReadFull(p.r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	} else {
		s, err := p.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n = uint64(s)
	}
	if n > 64<<20 {
		return 0, nil, errors.New("frame over 64 MiB")
	}
	body := make([]byte, n)
	_, err = io.ReadFull(p.r, body)
	return flags, body, err
}

// msg reads one message, answering PINGs (a 3.1 peer that does not is
// dropped after 30 s of silence) and skipping other commands.
func (p *peer) msg() ([][]byte, error) {
	var frames [][]byte
	for {
		flags, body, err := p.frame()
		if err != nil {
			return nil, err
		}
		if flags&0x04 != 0 {
			if len(body) >= 5 && string(body[:5]) == "\x04PING" {
				ctx := []byte{}
				if len(body) > 7 {
					ctx = body[7:]
				}
				pong := append([]byte("\x04PONG"), ctx...)
				if _, err := p.c.Write(appendFrame(nil, 0x04, pong)); err != nil {
					return nil, err
				}
			}
			continue
		}
		frames = append(frames, body)
		if flags&0x01 == 0 {
			return frames, nil
		}
	}
}

// send writes one request.
func (p *peer) send(verb, body string) error {
	_, err := p.c.Write(request(verb, body))
	return err
}

// drain reads and discards everything until the connection ends.
func (p *peer) drain() {
	for {
		if _, err := p.msg(); err != nil {
			return
		}
	}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 64<<10) }
