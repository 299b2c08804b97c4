package node_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/zmtp"
)

// Limits.ConnsPerSource reaches the registry's socket: the second
// established connection from one address is refused and counted.
func TestLimitsConnsPerSource(t *testing.T) {
	n := nodetest.Start(t, node.Config{Limits: node.Limits{ConnsPerSource: 1}})
	addr := strings.TrimPrefix(n.Server().Endpoint(), "tcp://")
	hello := zmtp.AppendGreeting(nil, zmtp.Greeting{Major: 3, Minor: 1, Mechanism: "NULL"})
	hello = zmtp.AppendCommand(hello, zmtp.CmdReady, zmtp.AppendMetadata(nil, zmtp.Metadata{{Name: zmtp.PropSocketType, Value: []byte("DEALER")}}))
	dial := func() net.Conn {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		if _, err := nc.Write(hello); err != nil {
			t.Fatal(err)
		}
		return nc
	}
	// The first is served: a PING gets its OK (past the greeting and READY).
	first := dial()
	first.Write(zmtp.AppendMessage(nil, [][]byte{[]byte("PING")}))
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	for !bytes.Contains(got, []byte("\x02OK")) {
		buf := make([]byte, 4096)
		m, err := first.Read(buf)
		if err != nil {
			t.Fatalf("the first connection, after %q: %v", got, err)
		}
		got = append(got, buf[:m]...)
	}
	second := dial()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, second); err != nil {
		t.Fatalf("the second connection was not closed: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, "the refusal counted", func() bool {
		return n.Server().HandshakeFailures()[zmtp.FailLimit] == 1
	})
}
