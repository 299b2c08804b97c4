package noise

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	flynn "github.com/flynn/noise"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/secure"
)

// TestNoiseKnownAnswer runs Noise test vectors (cacophony's, as shipped
// with flynn/noise) through our cipher functions: the handshake messages
// and transport messages must match byte for byte.
func TestNoiseKnownAnswer(t *testing.T) {
	h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	vectors := []struct {
		name    string
		pattern flynn.HandshakePattern
		cipher  Cipher
		msgs    [][2]string // payload, ciphertext
	}{
		{"Noise_IK_25519_AESGCM_BLAKE2s", flynn.HandshakeIK, CipherAESGCM, [][2]string{
			{"", "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254bd4f4131b33d738f4a2a299ee097f618811345c8fa0eb3de9fe75154b23f79e215fc093d990c4fa35c77f418515fe85be7f82ea4475e5b11703a89b904e605aa"},
			{"", "64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d4846616d4da51a337934aee3e82bab0b7b1f3"},
			{"79656c6c6f777375626d6172696e65", "b57093f3d1261319399a1150d5a937f3ef1a27415d2f9581d3bc0143eedefe"},
			{"7375626d6172696e6579656c6c6f77", "fe045568d1f521838b2eb348e07f26cd10332485732fb821ff8841ccc3b9d1"},
		}},
		{"Noise_IK_25519_ChaChaPoly_BLAKE2s", flynn.HandshakeIK, CipherChaChaPoly, [][2]string{
			{"", "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254c9f0dff42c86abe5677abe74f6c87301577dbc1f3ffb2213827ca694a057fdbbff7f7350265fe61102c24d7d7a7e960ba8b90a679895087c7d28b1d6703f9727"},
			{"", "64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d4846622bf9c6171ddd4c8f682080b03504eee"},
			{"79656c6c6f777375626d6172696e65", "595694f9be48f03790f699455c84578b31d14a7baedfd736d73c53f66a5657"},
			{"7375626d6172696e6579656c6c6f77", "621ae446b11fda3cf08e56102dac9324dee37a4e536cdc878e8b454d98bcf2"},
		}},
		{"Noise_XX_25519_AESGCM_BLAKE2s", flynn.HandshakeXX, CipherAESGCM, [][2]string{
			{"", "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254"},
			{"", "64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d48466c558f251b38f5770b20bfe770709ec1aa6e0aa1a2d8b4485e51667a91055ceed52213b8314b06ae8c63d9c596e2cdcb332ca2b99b3a8a6e7f71d1b1e62340fb3"},
			{"", "c0eef7241004fcad6fb84daa25d9a8921a8da60da9b8b39f387667e98069e72fea2a13ea74822183fae1d17df8a490e5ea7ab72edd2bce950758a4482447f664"},
			{"79656c6c6f777375626d6172696e65", "bb9dd5494e382306a88f8f32a4bb268cad2632353dd13aad364dc7493c4561"},
			{"7375626d6172696e6579656c6c6f77", "5e5ac356a3234cee842c6f719fa0657d35b69bcfe51e2edf5534c4276b7131"},
		}},
	}
	key := func(priv string) flynn.DHKey {
		k, _ := flynn.DH25519.GenerateKeypair(bytes.NewReader(h(priv)))
		return k
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			is, rs := key("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), key("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")
			ic := flynn.Config{CipherSuite: suiteFor(v.cipher), Pattern: v.pattern, Initiator: true, StaticKeypair: is,
				Random: bytes.NewReader(h("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"))}
			if v.pattern.Name == "IK" {
				ic.PeerStatic = rs.Public
			}
			rc := flynn.Config{CipherSuite: suiteFor(v.cipher), Pattern: v.pattern, StaticKeypair: rs,
				Random: bytes.NewReader(h("4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60"))}
			ihs, _ := flynn.NewHandshakeState(ic)
			rhs, _ := flynn.NewHandshakeState(rc)
			var isend, irecv, rsend, rrecv *flynn.CipherState
			sender, receiver := ihs, rhs
			for i, m := range v.msgs {
				var got []byte
				var err error
				if isend == nil {
					var c1, c2 *flynn.CipherState
					got, c1, c2, err = sender.WriteMessage(nil, h(m[0]))
					if err != nil {
						t.Fatal(err)
					}
					if c1 != nil {
						isend, irecv = c1, c2
					}
					_, c1, c2, err = receiver.ReadMessage(nil, got)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if c1 != nil {
						rrecv, rsend = c1, c2
					}
					sender, receiver = receiver, sender
				} else {
					// Transport: the initiator first, then alternating.
					if (i-len(v.pattern.Messages))%2 == 0 {
						got, _ = isend.Encrypt(nil, nil, h(m[0]))
						rrecv.Decrypt(nil, nil, got)
					} else {
						got, _ = rsend.Encrypt(nil, nil, h(m[0]))
						irecv.Decrypt(nil, nil, got)
					}
				}
				if hex.EncodeToString(got) != m[1] {
					t.Fatalf("message %d:\n got %x\nwant %s", i, got, m[1])
				}
			}
		})
	}
}

// tunnelPair returns the two ends of a tunnel over loopback TCP.
type tunnelOpts struct {
	pinned     bool // IK (the initiator knows the responder's key) or XX
	cipher     Cipher
	iPayload   []byte
	rPayload   []byte
	iLog, rLog *testutil.LogSink
	respPeers  secure.Authorizer // default: the initiator's key
	initPeers  secure.Authorizer // default: the responder's key
	wrap       func(net.Conn) net.Conn
	rRecord    time.Duration // the responder's RecordTimeout
}

func tunnelPair(t testing.TB, o tunnelOpts) (ini, resp *Conn) {
	t.Helper()
	ikp, rkp := newKeyPair(t), newKeyPair(t)
	if o.respPeers == nil {
		o.respPeers = secure.NewAllowList(ikp.Public)
	}
	if o.initPeers == nil {
		o.initPeers = secure.NewAllowList(rkp.Public)
	}
	rcfg := Config{Static: rkp, Peers: o.respPeers, Payload: o.rPayload, HandshakeTimeout: 10 * time.Second, RecordTimeout: o.rRecord}
	if o.rLog != nil {
		rcfg.Logger = o.rLog.Logger()
	}
	r, err := NewResponder(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := r.Listen(l)
	t.Cleanup(func() { ln.Close() })
	icfg := Config{Static: ikp, Peers: o.initPeers, Cipher: o.cipher, Payload: o.iPayload}
	if o.pinned {
		icfg.RemoteKey = rkp.Public
	}
	if o.iLog != nil {
		icfg.Logger = o.iLog.Logger()
	}
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if o.wrap != nil {
		nc = o.wrap(nc)
	}
	ini, err = Initiate(context.Background(), nc, icfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ini.Close() })
	resp, err = ln.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Close() })
	if !resp.PeerKey().Equal(ikp.Public) || !ini.PeerKey().Equal(rkp.Public) {
		t.Fatal("peer keys differ from the static keys")
	}
	return ini, resp
}

func TestNoiseTunnel(t *testing.T) {
	checkGoroutines(t)
	for _, pinned := range []bool{true, false} {
		for _, c := range []Cipher{CipherAESGCM, CipherChaChaPoly} {
			name := map[bool]string{true: "IK", false: "XX"}[pinned] + "/" + c.String()
			t.Run(name, func(t *testing.T) {
				ini, resp := tunnelPair(t, tunnelOpts{pinned: pinned, cipher: c, iPayload: []byte("from initiator"), rPayload: []byte("from responder")})
				want := "Noise_" + name[:2] + "_25519_" + c.String() + "_BLAKE2s"
				if ini.Suite() != want || resp.Suite() != want {
					t.Fatalf("suites %q %q, want %q", ini.Suite(), resp.Suite(), want)
				}
				if string(resp.PeerPayload()) != "from initiator" || string(ini.PeerPayload()) != "from responder" {
					t.Fatalf("payloads %q %q", resp.PeerPayload(), ini.PeerPayload())
				}
				exchange(t, ini, resp)
				exchange(t, resp, ini)
			})
		}
	}
}

// exchange sends data of awkward sizes from a to b and checks it arrives
// intact, then that Close after Write delivers everything and EOF.
func exchange(t *testing.T, a, b *Conn) {
	t.Helper()
	data := make([]byte, 3*maxPlain+1234)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		for _, n := range []int{1, 0, 100, maxPlain - 101, maxPlain, 70000} {
			if _, err := a.Write(data[:n]); err != nil {
				errc <- err
				return
			}
			data2 := data[n:]
			_ = data2
		}
		errc <- nil
	}()
	want := 0
	for _, n := range []int{1, 0, 100, maxPlain - 101, maxPlain, 70000} {
		want += n
	}
	got := make([]byte, 0, want)
	buf := make([]byte, 7000) // smaller than a record: exercises the in-place path
	for len(got) < want {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", len(got), want, err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	off := 0
	for _, n := range []int{1, 0, 100, maxPlain - 101, maxPlain, 70000} {
		if !bytes.Equal(got[off:off+n], data[:n]) {
			t.Fatalf("write of %d bytes arrived corrupted", n)
		}
		off += n
	}
}

func TestNoiseCloseFlushesAndHalfClose(t *testing.T) {
	checkGoroutines(t)
	ini, resp := tunnelPair(t, tunnelOpts{pinned: true})
	data := bytes.Repeat([]byte("0123456789"), 100000)
	if _, err := ini.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := ini.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := ini.Write([]byte("x")); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Write after CloseWrite: %v", err)
	}
	got, err := io.ReadAll(resp)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want %d then EOF", len(got), err, len(data))
	}
	// The other direction still works after the half-close.
	resp.Write([]byte("reply"))
	resp.Close()
	got, err = io.ReadAll(ini)
	if err != nil || string(got) != "reply" {
		t.Fatalf("reply %q %v", got, err)
	}
}

// recordSpy parses the records a Conn writes to check their sizes.
type recordSpy struct {
	net.Conn
	mu     sync.Mutex
	buf    []byte
	sizes  []int
	writes int
	delay  time.Duration // a slow link
}

func (s *recordSpy) Write(b []byte) (int, error) {
	s.mu.Lock()
	time.Sleep(s.delay)
	s.writes++
	s.buf = append(s.buf, b...)
	for len(s.buf) >= 2 {
		n := int(binary.BigEndian.Uint16(s.buf))
		if len(s.buf) < 2+n {
			break
		}
		s.sizes = append(s.sizes, n)
		s.buf = s.buf[2+n:]
	}
	s.mu.Unlock()
	return s.Conn.Write(b)
}

// TestNoiseCoalescing: many small writes of a bulk stream that the link
// cannot keep up with (each socket write takes a millisecond here) go out
// as full records (65535 bytes on the wire), never larger.
func TestNoiseCoalescing(t *testing.T) {
	var spy *recordSpy
	ini, resp := tunnelPair(t, tunnelOpts{pinned: true, wrap: func(c net.Conn) net.Conn { spy = &recordSpy{Conn: c}; return spy }})
	spy.mu.Lock()
	spy.delay = time.Millisecond
	spy.buf, spy.sizes, spy.writes = nil, nil, 0 // forget the handshake
	spy.mu.Unlock()
	const total = 4 << 20
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, resp, total)
		done <- err
	}()
	chunk := make([]byte, 1000)
	for sent := 0; sent < total; sent += len(chunk) {
		if _, err := ini.Write(chunk[:min(len(chunk), total-sent)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	full := 0
	for _, s := range spy.sizes {
		if s > maxRecord {
			t.Fatalf("record of %d bytes", s)
		}
		if s == maxRecord {
			full++
		}
	}
	// 4 MiB in 1000-byte writes: 4195 writes, 65 records if full. Most
	// must be full; how many is up to scheduling, so ask only for half.
	if full < total/maxPlain/2 {
		t.Fatalf("%d full records of %d (%d socket writes) for %d writes; sizes %v", full, len(spy.sizes), spy.writes, total/len(chunk), spy.sizes[:min(20, len(spy.sizes))])
	}
	t.Logf("%d records (%d full) in %d socket writes for %d Write calls", len(spy.sizes), full, spy.writes, total/len(chunk))
}

// TestNoiseRekeyAndNonceLimit: both sides rekey at the same record number
// (data stays intact), rekeying on one side only breaks the link, and the
// nonce limit closes the link instead of wrapping.
func TestNoiseRekeyAndNonceLimit(t *testing.T) {
	t.Run("rekey in step", func(t *testing.T) {
		ini, resp := tunnelPair(t, tunnelOpts{pinned: true})
		ini.rekeyEvery, resp.rekeyEvery = 3, 3
		for i := 0; i < 20; i++ {
			msg := []byte{byte(i)}
			ini.Write(msg)
			var b [1]byte
			if _, err := io.ReadFull(resp, b[:]); err != nil || b[0] != byte(i) {
				t.Fatalf("record %d after rekeys: %v", i, err)
			}
		}
	})
	t.Run("rekey out of step", func(t *testing.T) {
		rlog := testutil.NewLogSink()
		ini, resp := tunnelPair(t, tunnelOpts{pinned: true, rLog: rlog})
		ini.rekeyEvery = 2
		var err error
		for i := 0; i < 5 && err == nil; i++ {
			ini.Write([]byte{1})
			var b [1]byte
			_, err = io.ReadFull(resp, b[:])
		}
		if !errors.Is(err, ErrRecordAuth) {
			t.Fatalf("read with keys out of step: %v, want ErrRecordAuth", err)
		}
		rlog.WaitFor(t, "link closed", ErrRecordAuth.Error())
	})
	t.Run("nonce limit", func(t *testing.T) {
		ilog := testutil.NewLogSink()
		ini, resp := tunnelPair(t, tunnelOpts{pinned: true, iLog: ilog})
		ini.limit = 6 // the confirmation was record 0
		var werr error
		for i := 0; i < 100 && werr == nil; i++ {
			_, werr = ini.Write([]byte{byte(i)})
			var b [1]byte
			if i < 5 {
				if _, err := io.ReadFull(resp, b[:]); err != nil {
					t.Fatalf("record %d before the limit: %v", i, err)
				}
			}
		}
		ilog.WaitFor(t, "link closed", ErrNonceLimit.Error())
		if _, err := ini.Write([]byte("x")); !errors.Is(err, ErrNonceLimit) {
			t.Fatalf("Write past the limit: %v, want ErrNonceLimit", err)
		}
		var b [1]byte
		if _, err := resp.Read(b[:]); err != io.EOF {
			t.Fatalf("peer read after the limit: %v, want EOF", err)
		}
	})
}

// TestNoiseWriteDeadline: a Write that cannot queue because the peer does
// not read returns a timeout once the write deadline passes.
func TestNoiseWriteDeadline(t *testing.T) {
	ini, _ := tunnelPair(t, tunnelOpts{pinned: true})
	ini.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 1<<20)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = ini.Write(buf)
	}
	if !isTimeout(err) {
		t.Fatalf("Write to a stalled peer: %v, want a timeout", err)
	}
}

// TestNoiseBadInput drives a Listener with the bad inputs of the issue,
// all at once, next to a good tunnel that keeps working. Each bad
// connection is closed with its reason logged.
func TestNoiseBadInput(t *testing.T) {
	checkGoroutines(t)
	rlog := testutil.NewLogSink()
	ikp, rkp, stranger := newKeyPair(t), newKeyPair(t), newKeyPair(t)
	r, err := NewResponder(Config{Static: rkp, Peers: secure.NewAllowList(ikp.Public), Logger: rlog.Logger(),
		HandshakeTimeout: 500 * time.Millisecond, HandshakeBurst: 100})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := r.Listen(l)
	defer ln.Close()
	addr := l.Addr().String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// closedByPeer waits until the responder closes c.
	closedByPeer := func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("waiting for the responder to close: %v", err)
		}
		c.Close()
	}

	// A good tunnel, up before the trouble and used after it.
	good, err := Initiate(context.Background(), dial(), Config{Static: ikp, RemoteKey: rkp.Public})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	goodResp, err := ln.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer goodResp.Close()

	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	// Garbage instead of a handshake.
	run(func() {
		c := dial()
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		closedByPeer(c)
	})
	// A stalled handshake: half a preamble, then nothing.
	run(func() {
		c := dial()
		c.Write([]byte(PreambleMagic))
		closedByPeer(c)
	})
	// An unknown static key (IK and XX).
	for _, pinned := range []bool{true, false} {
		run(func() {
			cfg := Config{Static: stranger, Peers: secure.AllowAny()}
			if pinned {
				cfg.RemoteKey = rkp.Public
			}
			if _, err := Initiate(context.Background(), dial(), cfg); err == nil {
				t.Error("a stranger's handshake succeeded")
			}
		})
	}
	wg.Wait()
	// A truncated record and a record failing authentication, each on a
	// link whose handshake succeeded: the raw socket is written directly.
	// One at a time, so that AcceptConn returns the link we tamper with.
	for _, kind := range []string{"truncated", "bad tag"} {
		func() {
			raw := dial()
			c, err := Initiate(context.Background(), raw, Config{Static: ikp, RemoteKey: rkp.Public})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			rc, err := ln.AcceptConn()
			if err != nil {
				t.Error(err)
				return
			}
			defer rc.Close()
			c.Write([]byte("fine"))
			var b [4]byte
			if _, err := io.ReadFull(rc, b[:]); err != nil {
				t.Error(err)
				return
			}
			if kind == "truncated" {
				raw.Write([]byte{0, 100, 1, 2, 3})
				raw.(*net.TCPConn).CloseWrite()
			} else {
				raw.Write(append([]byte{0, 20}, make([]byte, 20)...))
			}
			_, err = rc.Read(b[:])
			want := map[string]error{"truncated": ErrRecordTruncated, "bad tag": ErrRecordAuth}[kind]
			if !errors.Is(err, want) {
				t.Errorf("%s: Read = %v, want %v", kind, err, want)
			}
		}()
	}

	rlog.WaitFor(t, "handshake failed", ErrPreamble.Error(), "not a tunnel")
	rlog.WaitFor(t, "handshake failed", ErrHandshakeTimeout.Error())
	rlog.WaitFor(t, "handshake failed", secure.ErrUnauthorized.Error(), stranger.Public.String())
	rlog.WaitFor(t, "link closed", ErrRecordTruncated.Error())
	rlog.WaitFor(t, "link closed", ErrRecordAuth.Error())

	// The good tunnel never noticed.
	good.Write([]byte("still here"))
	b := make([]byte, 10)
	if _, err := io.ReadFull(goodResp, b); err != nil || string(b) != "still here" {
		t.Fatalf("good tunnel after the bad input: %q %v", b, err)
	}
}

// TestNoiseWrongPinnedKey: an initiator pinning the wrong responder key
// fails (the responder cannot decrypt IK message 1 and says nothing).
func TestNoiseWrongPinnedKey(t *testing.T) {
	rlog := testutil.NewLogSink()
	ikp, rkp, other := newKeyPair(t), newKeyPair(t), newKeyPair(t)
	r, _ := NewResponder(Config{Static: rkp, Peers: secure.AllowAny(), Logger: rlog.Logger()})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := r.Listen(l)
	defer ln.Close()
	nc, _ := net.Dial("tcp", l.Addr().String())
	if _, err := Initiate(context.Background(), nc, Config{Static: ikp, RemoteKey: other.Public}); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Initiate with a wrong pinned key: %v", err)
	}
	rlog.WaitFor(t, "handshake failed", "IK message 1 does not decrypt")
}

// TestNoiseXXRefusesUnknownResponder: without a pinned key the initiator
// checks the responder's key against Peers before sending its identity.
func TestNoiseXXRefusesUnknownResponder(t *testing.T) {
	ikp, rkp := newKeyPair(t), newKeyPair(t)
	r, _ := NewResponder(Config{Static: rkp, Peers: secure.AllowAny()})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := r.Listen(l)
	defer ln.Close()
	nc, _ := net.Dial("tcp", l.Addr().String())
	_, err := Initiate(context.Background(), nc, Config{Static: ikp, Peers: secure.NewAllowList()})
	if !errors.Is(err, secure.ErrUnauthorized) {
		t.Fatalf("XX with an unknown responder: %v", err)
	}
}

// TestNoiseReplayedFirstMessage: a recorded IK first message (with its
// payload) replayed by someone without the initiator's ephemeral key gets
// a reply but never completes: the responder waits for the key
// confirmation, the handshake fails, and the payload never reaches the
// application.
func TestNoiseReplayedFirstMessage(t *testing.T) {
	rlog := testutil.NewLogSink()
	ikp, rkp := newKeyPair(t), newKeyPair(t)
	r, _ := NewResponder(Config{Static: rkp, Peers: secure.AllowAny(), Logger: rlog.Logger(), HandshakeTimeout: 500 * time.Millisecond})
	// Record what a genuine initiator sends first.
	a, b := net.Pipe()
	rec := make(chan []byte, 1)
	go func() {
		buf := make([]byte, PreambleSize+2+ik1Len+len("open sesame"))
		io.ReadFull(b, buf)
		rec <- buf
		b.Close()
	}()
	Initiate(context.Background(), a, Config{Static: ikp, RemoteKey: rkp.Public, Payload: []byte("open sesame")})
	first := <-rec
	// Replay it.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := r.Listen(l)
	defer ln.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := ln.AcceptConn()
		if err == nil {
			accepted <- c
		}
	}()
	nc, _ := net.Dial("tcp", l.Addr().String())
	defer nc.Close()
	nc.Write(first)
	rlog.WaitFor(t, "handshake failed", ErrHandshakeTimeout.Error(), "key confirmation")
	select {
	case c := <-accepted:
		t.Fatalf("a replayed first message was accepted, payload %q", c.PeerPayload())
	default:
	}
}

func TestRateLimiter(t *testing.T) {
	rl := newRateLimiter(1, 3)
	now := time.Unix(1000, 0)
	a := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}
	b := &net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 1}
	v6a := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}
	v6b := &net.TCPAddr{IP: net.ParseIP("2001:db8::ffff"), Port: 2} // same /64
	for i := 0; i < 3; i++ {
		if !rl.allow(a, now) {
			t.Fatalf("attempt %d within the burst refused", i)
		}
	}
	if rl.allow(a, now) {
		t.Fatal("attempt past the burst allowed")
	}
	if !rl.allow(b, now) {
		t.Fatal("another address was limited too")
	}
	if !rl.allow(a, now.Add(time.Second)) || rl.allow(a, now.Add(time.Second)) {
		t.Fatal("refill after a second should allow exactly one")
	}
	for i := 0; i < 3; i++ {
		rl.allow(v6a, now)
	}
	if rl.allow(v6b, now) {
		t.Fatal("an IPv6 /64 is one source")
	}
	// Sweeping forgets idle sources without changing the answers.
	later := now.Add(time.Hour)
	if !rl.allow(a, later) || len(rl.buckets) != 1 {
		t.Fatalf("sweep left %d buckets", len(rl.buckets))
	}
}

// TestNoiseRateLimitedListener: past the burst, a source's connections are
// closed before any handshake work, with the reason logged.
func TestNoiseRateLimitedListener(t *testing.T) {
	rlog := testutil.NewLogSink()
	ikp, rkp := newKeyPair(t), newKeyPair(t)
	r, _ := NewResponder(Config{Static: rkp, Peers: secure.AllowAny(), Logger: rlog.Logger(), HandshakeBurst: 2, HandshakeRate: 0.001})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ln := r.Listen(l)
	defer ln.Close()
	var errs []error
	for i := 0; i < 3; i++ {
		nc, _ := net.Dial("tcp", l.Addr().String())
		c, err := Initiate(context.Background(), nc, Config{Static: ikp, RemoteKey: rkp.Public})
		if err == nil {
			c.Close()
		}
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("handshake results %v, want two successes then a refusal", errs)
	}
	rlog.WaitFor(t, "handshake refused", ErrRateLimited.Error())
}

func TestPreamble(t *testing.T) {
	for _, c := range []Cipher{CipherAESGCM, CipherChaChaPoly} {
		for _, pattern := range []byte{patternIK, patternXX} {
			p := preamble{pattern: pattern, cipher: c}
			b := p.append(nil)
			if len(b) != PreambleSize || !IsTunnelPreamble(b[:1]) || !IsTunnelPreamble(b) {
				t.Fatalf("preamble % x", b)
			}
			got, n, err := parsePreamble(b)
			if err != nil || got != p || n != PreambleSize {
				t.Fatalf("parse(% x) = %+v %d %v", b, got, n, err)
			}
			for i := range b {
				if _, _, err := parsePreamble(b[:i]); !errors.Is(err, ErrPreamble) || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("truncated preamble: %v", err)
				}
			}
		}
	}
	if IsTunnelPreamble([]byte{0xFF}) {
		t.Fatal("a ZMTP greeting looks like a tunnel")
	}
	if !HasAESHardware() && CipherAuto.resolve() != CipherChaChaPoly || HasAESHardware() && CipherAuto.resolve() != CipherAESGCM {
		t.Fatal("CipherAuto does not follow the CPU")
	}
}
