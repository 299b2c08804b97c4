package zmtp

import (
	"fmt"
	"testing"
)

// BenchmarkPushPull measures PUSH→PULL throughput over loopback TCP within
// one process (bench/ has the two-process comparison with libzmq and zmq4).
func BenchmarkPushPull(b *testing.B) {
	benchPushPull(b, func(string) string { return "tcp://127.0.0.1:0" })
}

// BenchmarkPushPullInproc is BenchmarkPushPull over inproc://, what a
// simulation of many servers in one process pays per message.
func BenchmarkPushPullInproc(b *testing.B) {
	benchPushPull(b, func(sub string) string { return "inproc://" + b.Name() + "/" + sub })
}

func benchPushPull(b *testing.B, endpoint func(sub string) string) {
	for _, size := range []int{16, 256, 4096, 65536} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			pull, _ := NewSocket(PULL, Config{RecvHWM: 100000})
			defer pull.Close()
			if err := pull.Bind(endpoint(fmt.Sprint(size))); err != nil {
				b.Fatal(err)
			}
			push, _ := NewSocket(PUSH, Config{SendHWM: 100000})
			defer push.Close()
			push.Connect(pull.Endpoint())
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			done := make(chan error)
			go func() {
				for i := 0; i < b.N; i++ {
					if _, err := pull.Recv(); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := 0; i < b.N; i++ {
				if err := push.Send(msg); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
