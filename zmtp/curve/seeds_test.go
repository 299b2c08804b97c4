package curve

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/zmtp"

	"github.com/hydra-net/hydra/secure"
)

// TestWriteFuzzSeeds (re)writes the committed fuzz seeds under
// testdata/fuzz: real handshakes captured from pyzmq (libzmq) against our
// server with the zmq_curve(7) example keys the fuzz targets use, ours,
// and hand-made edge cases. Run it when a format changes:
//
//	HYDRA_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./zmtp/curve/
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HYDRA_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HYDRA_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	seed := func(target, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A pyzmq client's handshake and first message, recorded.
	up, down := capturePyzmqHandshake(t)
	cli, srv := splitFrames(t, up[zmtp.GreetingSize:]), splitFrames(t, down[zmtp.GreetingSize:])
	byName := func(frames [][]byte, name string) []byte {
		for _, f := range frames {
			if _, _, n, err := zmtp.ParseFrameHeader(f, 1<<20); err == nil {
				if b := f[n:]; len(b) > len(name) && string(b[1:1+len(name)]) == name {
					return f
				}
			}
		}
		t.Fatalf("no %s captured", name)
		return nil
	}
	body := func(frame []byte, name string) []byte {
		_, _, n, _ := zmtp.ParseFrameHeader(frame, 1<<20)
		return frame[n+1+len(name):]
	}
	hello, initiate, message := byName(cli, cmdHello), byName(cli, cmdInitiate), byName(cli, cmdMessage)
	welcome, ready := byName(srv, cmdWelcome), byName(srv, zmtp.CmdReady)
	seed("FuzzCurveHello", "pyzmq-hello", body(hello, cmdHello))
	seed("FuzzCurveInitiate", "pyzmq-initiate", body(initiate, cmdInitiate))
	seed("FuzzCurveWelcome", "hydra-welcome-to-pyzmq", body(welcome, cmdWelcome))
	seed("FuzzCurveReady", "hydra-ready-to-pyzmq", body(ready, zmtp.CmdReady))
	_, _, n, _ := zmtp.ParseFrameHeader(message, 1<<20)
	seed("FuzzCurveMessage", "pyzmq-message", message[n:])
	seed("FuzzCurveServerHandshake", "pyzmq-stream", append(append([]byte{0}, hello...), initiate...))

	// Hand-made.
	bad := bytes.Clone(body(hello, cmdHello))
	bad[0] = 2
	seed("FuzzCurveHello", "version-2", bad)
	seed("FuzzCurveHello", "one-short", body(hello, cmdHello)[:helloBody-1])
	seed("FuzzCurveMessage", "empty-box", []byte("\x07MESSAGE\x00\x00\x00\x00\x00\x00\x00\x05"+string(make([]byte, 17))))
	seed("FuzzCurveMessage", "nonce-max", []byte("\x07MESSAGE\xff\xff\xff\xff\xff\xff\xff\xff"+string(make([]byte, 17))))
	seed("FuzzCurveServerHandshake", "long-frame-2p50", []byte{0, 0x06, 0, 4, 0, 0, 0, 0, 0, 0, 5, 'H'})
	seed("FuzzCurveServerHandshake", "message-frame-first", append([]byte{0, 0x00, 5}, "HELLO"...))
	seed("FuzzCurveServerHandshake", "mutate-genuine-initiate-cookie", append([]byte{1}, append(make([]byte, 200), 0x01)...))
}

// capturePyzmqHandshake runs a pyzmq CURVE PUSH client (the manual's client
// keys) against our PULL server (the manual's server keys) through a
// recording relay and returns both directions' bytes.
func capturePyzmqHandshake(t *testing.T) (up, down []byte) {
	sk, ck := fuzzKeys(t)
	pull := newSocket(t, zmtp.PULL, zmtp.Config{Security: Server(sk, secure.NewAllowList(ck.Public))})
	pull.Bind("tcp://127.0.0.1:0")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	var mu sync.Mutex
	var upBuf, downBuf bytes.Buffer
	var wg sync.WaitGroup
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", pull.Endpoint()[len("tcp://"):])
		if err != nil {
			return
		}
		copyRec := func(dst io.Writer, src io.Reader, rec *bytes.Buffer) {
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := src.Read(buf)
				mu.Lock()
				rec.Write(buf[:n])
				mu.Unlock()
				dst.Write(buf[:n])
				if err != nil {
					return
				}
			}
		}
		wg.Add(2)
		go copyRec(s, c, &upBuf)
		go copyRec(c, s, &downBuf)
	}()
	p := startPyPeer(t, "--type", "PUSH", "--connect", "tcp://"+l.Addr().String(),
		"--public="+ck.Public.String(), "--secret="+ck.Secret.Z85(), "--server-key="+sk.Public.String(), "--send", hx("seed message"))
	if _, err := recvTimeout(t, pull, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	p.finish(t)
	pull.Close()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return bytes.Clone(upBuf.Bytes()), bytes.Clone(downBuf.Bytes())
}

// splitFrames cuts a ZMTP byte stream into whole frames (header included).
func splitFrames(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		_, size, n, err := zmtp.ParseFrameHeader(b, 1<<30)
		if err != nil || int64(len(b)-n) < size {
			break
		}
		out = append(out, b[:n+int(size)])
		b = b[n+int(size):]
	}
	return out
}
