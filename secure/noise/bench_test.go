package noise

import (
	"io"
	"net"
	"testing"
)

// BenchmarkTunnelStream measures one bulk stream over loopback TCP: raw,
// and through the Noise transport with each cipher, in one run:
//
//	go test -run '^$' -bench TunnelStream -benchtime 2s ./secure/noise/
//
// Each op moves 128 KiB, written in 32 KiB calls (io.Copy's size) and read
// with a 128 KiB buffer. cpu-ns/B is the CPU time of both ends per byte.
func BenchmarkTunnelStream(b *testing.B) {
	for _, kind := range []string{"raw-tcp", "noise-AESGCM", "noise-ChaChaPoly"} {
		b.Run(kind, func(b *testing.B) {
			var w io.WriteCloser
			var r io.Reader
			switch kind {
			case "raw-tcp":
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				s, err := l.Accept()
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				w, r = c, s
			default:
				c := map[string]Cipher{"noise-AESGCM": CipherAESGCM, "noise-ChaChaPoly": CipherChaChaPoly}[kind]
				ini, resp := tunnelPair(b, tunnelOpts{pinned: true, cipher: c})
				w, r = ini, resp
			}
			const op = 128 << 10
			chunk := make([]byte, 32<<10)
			b.SetBytes(op)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			done := make(chan error, 1)
			go func() {
				// Not io.Copy into io.Discard: its ReadFrom reads 8 KiB at a time.
				buf := make([]byte, 128<<10)
				for left := int64(b.N) * op; left > 0; {
					n, err := r.Read(buf[:min(int64(len(buf)), left)])
					left -= int64(n)
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := 0; i < b.N; i++ {
				for k := 0; k < op/len(chunk); k++ {
					if _, err := w.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			// CPU per byte, both ends and their system calls: unlike MB/s,
			// it barely moves with what else the machine runs.
			if cpu0 >= 0 {
				b.ReportMetric(float64(cpuTime()-cpu0)/(float64(b.N)*op), "cpu-ns/B")
			}
			if c, ok := w.(*Conn); ok {
				c.wmu.Lock()
				b.ReportMetric(float64(b.N)*op/float64(c.send.Nonce()), "B/record")
				c.wmu.Unlock()
			}
			w.Close()
		})
	}
}

// BenchmarkRecordCipher seals and opens one full Noise record (65519
// plaintext bytes) with each cipher: the crypto floor under
// BenchmarkTunnelStream.
//
//	go test -run '^$' -bench RecordCipher ./secure/noise/
func BenchmarkRecordCipher(b *testing.B) {
	for _, f := range []aeadFunc{cipherAESGCM, cipherChaChaPoly} {
		a, err := f.new(make([]byte, 32))
		if err != nil {
			b.Fatal(err)
		}
		nonce := make([]byte, a.NonceSize())
		pt := make([]byte, maxRecord-tagSize)
		ct := a.Seal(nil, nonce, pt, nil)
		b.Run(f.name+"/seal", func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				a.Seal(ct[:0], nonce, pt, nil)
			}
		})
		b.Run(f.name+"/open", func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			out := make([]byte, len(pt))
			for b.Loop() {
				if _, err := a.Open(out[:0], nonce, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
