package curve

import (
	"fmt"
	"testing"

	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
)

// BenchmarkCurvePushPull measures PUSH→PULL throughput over loopback TCP
// between two zmtp sockets in one process, NULL and CURVE side by side:
//
//	go test -run '^$' -bench CurvePushPull -benchtime 2s ./zmtp/curve/
//
// TestCurveVsLibzmq runs the same sizes against libzmq (pyzmq) in one run
// and prints the ratios.
func BenchmarkCurvePushPull(b *testing.B) {
	for _, mech := range []string{"NULL", "CURVE"} {
		for _, size := range []int{256, 65536} {
			b.Run(fmt.Sprintf("%s/%d", mech, size), func(b *testing.B) { benchPushPull(b, mech, size) })
		}
	}
}

func benchPushPull(b *testing.B, mech string, size int) {
	sopt := zmtp.Config{RecvHWM: 100000}
	copt := zmtp.Config{SendHWM: 100000}
	if mech == "CURVE" {
		server, client := newKeyPair(b), newKeyPair(b)
		sopt.Security = Server(server, secure.NewAllowList(client.Public))
		copt.Security = Client(client, server.Public)
	}
	pull, err := zmtp.NewSocket(zmtp.PULL, sopt)
	if err != nil {
		b.Fatal(err)
	}
	defer pull.Close()
	if err := pull.Bind("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	push, err := zmtp.NewSocket(zmtp.PUSH, copt)
	if err != nil {
		b.Fatal(err)
	}
	defer push.Close()
	push.Connect(pull.Endpoint())
	msg := make([]byte, size)
	// One message through first, so the handshake is not measured.
	push.Send(msg)
	if _, err := pull.Recv(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
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
	// Both ends' CPU per byte: under load, wall-clock throughput says more
	// about the neighbours than about the code.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*size), "cpu-ns/B")
}
