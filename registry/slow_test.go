package registry_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// dialNonReader connects a raw ZMTP DEALER with a tiny receive buffer
// (so the kernel holds little for it), sends msgs, and never reads.
func dialNonReader(t *testing.T, srv *registry.Server, msgs ...[][]byte) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", strings.TrimPrefix(srv.Endpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	b := zmtp.AppendGreeting(nil, zmtp.Greeting{Major: 3, Minor: 1, Mechanism: "NULL"})
	b = zmtp.AppendCommand(b, zmtp.CmdReady, zmtp.AppendMetadata(nil, zmtp.Metadata{{Name: zmtp.PropSocketType, Value: []byte("DEALER")}}))
	for _, m := range msgs {
		b = zmtp.AppendMessage(b, m)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	return nc
}

// heapInuse is the heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// wellBehaved looks up its own entry on its own connection until stop is
// closed, and returns how many lookups were answered; any failure fails t.
func wellBehaved(t *testing.T, srv *registry.Server, stop chan struct{}) (answered func() int64, wait func()) {
	req := nodetest.RawSocket(t, srv.Endpoint(), zmtp.REQ)
	mustOK(t, req, "REGISTER", map[string]any{"name": "good", "host": "127.0.0.1", "port": 1})
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := req.Send([]byte("LOOKUP"), []byte(`{"name":"good"}`)); err != nil {
				t.Errorf("well-behaved client: send: %v", err)
				return
			}
			rep, err := req.Recv()
			if err != nil || string(rep[0]) != "OK" || !strings.Contains(string(rep[1]), `"port":1`) {
				t.Errorf("well-behaved client: %q %v", rep, err)
				return
			}
			n.Add(1)
		}
	}()
	return n.Load, wg.Wait
}

// TestSlowListCallerCutOff is the attack, scaled down: a DEALER
// sends many LIST entries=true, each answered by a large page, and never
// reads. It is cut off at its byte budget instead of holding every page,
// counted, and a well-behaved client keeps being answered.
func TestSlowListCallerCutOff(t *testing.T) {
	const entries, lists = 200, 200
	srv := startServer(t, registry.Config{})
	req := rawSocket(t, srv, zmtp.REQ)
	pad := strings.Repeat("x", 4000)
	for i := range entries {
		mustOK(t, req, "REGISTER", map[string]any{"name": "big", "host": "127.0.0.1", "port": 1000 + i, "meta": map[string]string{"pad": pad}})
	}
	stop := make(chan struct{})
	answered, wait := wellBehaved(t, srv, stop)
	before := heapInuse()
	listed := func() int64 {
		for _, v := range srv.Requests() {
			if v.Verb == registry.VerbList {
				return v.OK
			}
		}
		return 0
	}

	list := [][]byte{[]byte("LIST"), []byte(`{"entries":true}`)}
	msgs := make([][][]byte, lists)
	for i := range msgs {
		msgs[i] = list
	}
	dialNonReader(t, srv, msgs...)
	testutil.Eventually(t, 30*time.Second, "every LIST handled or the caller cut off", func() bool {
		return listed() >= lists || srv.Stats().SlowConsumers > 0
	})
	during := heapInuse()
	lookups := answered()
	close(stop)
	wait()
	st := srv.Stats()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB with the non-reader (%d LIST of ~%d KiB each sent); slow consumers %d; %d LIST answered; well-behaved lookups answered meanwhile %d",
		float64(before)/(1<<20), float64(during)/(1<<20), lists, entries*4100>>10, st.SlowConsumers, listed(), lookups)
	if st.SlowConsumers != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", st.SlowConsumers)
	}
	if lookups == 0 {
		t.Fatal("the well-behaved client was not answered during the attack")
	}
	if es := mustOK(t, req, "LOOKUP", map[string]any{"name": "good"})["entries"].([]any); len(es) != 1 {
		t.Fatalf("LOOKUP after the attack: %v", es)
	}
}

// TestSlowWatcherCutOff: a watcher that never reads while a 4 KB entry is
// updated many times is cut off at its byte budget and its watch dropped.
func TestSlowWatcherCutOff(t *testing.T) {
	const updates = 2000
	srv := startServer(t, registry.Config{MaxPendingBytes: 1 << 20})
	req := rawSocket(t, srv, zmtp.REQ)
	pad := strings.Repeat("x", 4000)
	reg := mustOK(t, req, "REGISTER", map[string]any{"name": "big", "host": "127.0.0.1", "port": 1, "meta": map[string]string{"pad": pad}})
	stop := make(chan struct{})
	answered, wait := wellBehaved(t, srv, stop)
	dialNonReader(t, srv, [][]byte{[]byte("WATCH"), []byte(`{"name":"big"}`)})
	testutil.Eventually(t, 10*time.Second, "the watch is set", func() bool { return srv.Stats().Watches == 1 })
	before := heapInuse()
	for i := 0; i < updates && srv.Stats().Watches > 0; i++ {
		mustOK(t, req, "UPDATE", map[string]any{"token": reg["token"], "instance": reg["instance"],
			"meta": map[string]string{"pad": pad, "n": fmt.Sprint(i)}})
	}
	during := heapInuse()
	lookups := answered()
	close(stop)
	wait()
	st := srv.Stats()
	t.Logf("heap in use: %.1f MiB before, %.1f MiB after the updates; events %d, dropped %d; slow consumers %d; watches %d; well-behaved lookups %d",
		float64(before)/(1<<20), float64(during)/(1<<20), st.Events, st.EventsDropped, st.SlowConsumers, st.Watches, lookups)
	if st.SlowConsumers != 1 || st.Watches != 0 {
		t.Fatalf("SlowConsumers = %d, Watches = %d; want 1 and 0", st.SlowConsumers, st.Watches)
	}
	if lookups == 0 {
		t.Fatal("the well-behaved client was not answered")
	}
}
