package zmtp

// Interoperability with github.com/go-zeromq/zmq4 (v0.17, ZMTP 3.0), in
// process over loopback TCP, each pattern in both directions: our socket
// binds and zmq4 connects, then zmq4 binds and ours connects. zmq4 is slow
// and sometimes stalls, so every wait is bounded by a context; the tests
// assert contents, order and counts, never how long anything took.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// zqTimeout bounds each test; it only turns a stall into a failure.
const zqTimeout = 30 * time.Second

// zqContext returns the context every socket and wait of a test uses.
func zqContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), zqTimeout)
	t.Cleanup(cancel)
	return ctx
}

// zqOptions are the options of every zmq4 socket: quiet.
func zqOptions(extra ...zmq4.Option) []zmq4.Option {
	return append([]zmq4.Option{zmq4.WithLogger(log.New(io.Discard, "", 0))}, extra...)
}

// zqListen binds a zmq4 socket to a free loopback port and returns the
// endpoint ours connect to.
func zqListen(t *testing.T, s zmq4.Socket) string {
	t.Helper()
	t.Cleanup(func() { zqClose(s) })
	if err := s.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatalf("zmq4 %s: listen: %v", s.Type(), err)
	}
	return "tcp://" + s.Addr().String()
}

// zqDial connects a zmq4 socket to ep.
func zqDial(t *testing.T, s zmq4.Socket, ep string) {
	t.Helper()
	t.Cleanup(func() { zqClose(s) })
	if err := s.Dial(ep); err != nil {
		t.Fatalf("zmq4 %s: dial %s: %v", s.Type(), ep, err)
	}
}

// zqClose closes a zmq4 socket without waiting more than a few seconds:
// its Close can hang.
func zqClose(s zmq4.Socket) {
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// zqOurs makes one of our sockets, closed at the end of the test, bound
// (ep "") or connected to ep.
func zqOurs(t *testing.T, typ SocketType, opt Config, ep string) *Socket {
	t.Helper()
	s, err := NewSocket(typ, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if ep == "" {
		err = s.Bind("tcp://127.0.0.1:0")
	} else {
		err = s.Connect(ep)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// zqRecv receives from a zmq4 socket (its Recv ends with the context the
// socket was made with).
func zqRecv(t *testing.T, s zmq4.Socket) [][]byte {
	t.Helper()
	msg, err := s.Recv()
	if err != nil {
		t.Fatalf("zmq4 %s: recv: %v", s.Type(), err)
	}
	return msg.Frames
}

func zqSend(t *testing.T, s zmq4.Socket, frames ...string) {
	t.Helper()
	var fs [][]byte
	for _, f := range frames {
		fs = append(fs, []byte(f))
	}
	if err := s.Send(zmq4.NewMsgFrom(fs...)); err != nil {
		t.Fatalf("zmq4 %s: send: %v", s.Type(), err)
	}
}

func zqOurRecv(ctx context.Context, t *testing.T, s *Socket) [][]byte {
	t.Helper()
	msg, err := s.RecvContext(ctx)
	if err != nil {
		t.Fatalf("%s: recv: %v", s.Type(), err)
	}
	return msg
}

func zqOurSend(ctx context.Context, t *testing.T, s *Socket, frames ...string) {
	t.Helper()
	var fs [][]byte
	for _, f := range frames {
		fs = append(fs, []byte(f))
	}
	if err := s.SendContext(ctx, fs...); err != nil {
		t.Fatalf("%s: send: %v", s.Type(), err)
	}
}

// zqEqual fails unless got holds exactly the frames want.
func zqEqual(t *testing.T, what string, got [][]byte, want ...string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = string(got[i]) == want[i]
	}
	if !ok {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func TestZmq4ReqRep(t *testing.T) {
	const rounds = 20
	t.Run("ours REP binds", func(t *testing.T) {
		ctx := zqContext(t)
		rep := zqOurs(t, REP, Config{}, "")
		req := zmq4.NewReq(ctx, zqOptions()...)
		zqDial(t, req, rep.Endpoint())
		for i := range rounds {
			// Multipart requests and replies, every other round.
			request := []string{fmt.Sprint("request ", i)}
			if i%2 == 1 {
				request = append(request, "second part", "")
			}
			zqSend(t, req, request...)
			zqEqual(t, "REP got", zqOurRecv(ctx, t, rep), request...)
			zqOurSend(ctx, t, rep, fmt.Sprint("reply ", i), "tail")
			zqEqual(t, "zmq4 REQ got", zqRecv(t, req), fmt.Sprint("reply ", i), "tail")
		}
	})
	t.Run("zmq4 REP binds", func(t *testing.T) {
		ctx := zqContext(t)
		rep := zmq4.NewRep(ctx, zqOptions()...)
		ep := zqListen(t, rep)
		served := make(chan error, 1)
		go func() {
			for range rounds {
				msg, err := rep.Recv()
				if err != nil {
					served <- err
					return
				}
				reply := append([][]byte{[]byte("echo")}, msg.Frames...)
				if err := rep.Send(zmq4.NewMsgFrom(reply...)); err != nil {
					served <- err
					return
				}
			}
			served <- nil
		}()
		req := zqOurs(t, REQ, Config{}, ep)
		for i := range rounds {
			// No empty frame in the body: zmq4's REP takes everything up
			// to the last empty frame as the envelope, not the first.
			request := []string{fmt.Sprint("request ", i)}
			if i%2 == 1 {
				request = append(request, "second part", "third part")
			}
			zqOurSend(ctx, t, req, request...)
			zqEqual(t, "REQ got", zqOurRecv(ctx, t, req), append([]string{"echo"}, request...)...)
		}
		if err := <-served; err != nil {
			t.Fatalf("zmq4 REP: %v", err)
		}
	})
}

func TestZmq4DealerRouter(t *testing.T) {
	ids := []string{"dealer-a", "dealer-b", "dealer-c"}
	t.Run("ours ROUTER binds", func(t *testing.T) {
		ctx := zqContext(t)
		router := zqOurs(t, ROUTER, Config{RouterMandatory: true}, "")
		dealers := map[string]zmq4.Socket{}
		for _, id := range ids {
			d := zmq4.NewDealer(ctx, zqOptions(zmq4.WithID(zmq4.SocketIdentity(id)))...)
			zqDial(t, d, router.Endpoint())
			dealers[id] = d
			zqSend(t, d, "hello from "+id, "part 2")
		}
		// Each message arrives under the identity its dealer announced.
		seen := map[string]bool{}
		for range ids {
			msg := zqOurRecv(ctx, t, router)
			if len(msg) != 3 {
				t.Fatalf("ROUTER got %q", msg)
			}
			id := string(msg[0])
			zqEqual(t, "ROUTER got", msg, id, "hello from "+id, "part 2")
			if seen[id] {
				t.Fatalf("two messages from %q", id)
			}
			seen[id] = true
		}
		// Replies go to the dealer named, and to it only.
		for _, id := range ids {
			zqOurSend(ctx, t, router, id, "reply to "+id, "more")
		}
		for id, d := range dealers {
			zqEqual(t, id, zqRecv(t, d), "reply to "+id, "more")
		}
		if err := router.SendContext(ctx, []byte("nobody"), []byte("x")); err == nil {
			t.Fatal("send to an unknown routing id succeeded with RouterMandatory")
		}
	})
	t.Run("zmq4 ROUTER binds", func(t *testing.T) {
		ctx := zqContext(t)
		router := zmq4.NewRouter(ctx, zqOptions()...)
		ep := zqListen(t, router)
		dealers := map[string]*Socket{}
		for _, id := range ids {
			d := zqOurs(t, DEALER, Config{RoutingID: []byte(id)}, ep)
			dealers[id] = d
			zqOurSend(ctx, t, d, "hello from "+id, "part 2")
		}
		seen := map[string]bool{}
		for range ids {
			msg := zqRecv(t, router)
			if len(msg) != 3 {
				t.Fatalf("zmq4 ROUTER got %q", msg)
			}
			id := string(msg[0])
			zqEqual(t, "zmq4 ROUTER got", msg, id, "hello from "+id, "part 2")
			if _, ok := dealers[id]; !ok || seen[id] {
				t.Fatalf("message under routing id %q", id)
			}
			seen[id] = true
		}
		for _, id := range ids {
			zqSend(t, router, id, "reply to "+id, "more")
		}
		for id, d := range dealers {
			zqEqual(t, id, zqOurRecv(ctx, t, d), "reply to "+id, "more")
		}
	})
}

// zqPublished is what the publisher sends after the subscriber is known to
// be subscribed, and zqWanted what a subscriber to "a." must get of it.
var (
	zqPublished = [][]string{{"b.skip"}, {"a.1"}, {"ab.skip"}, {"a.2", "payload"}, {"x"}, {"a.3"}, {"A.skip"}, {"a.end"}}
	zqWanted    = [][]string{{"a.1"}, {"a.2", "payload"}, {"a.3"}, {"a.end"}}
)

// zqSyncPublish publishes "sync" with send until stop is closed: a
// subscription reaches a publisher at some point after it is made, and
// the first "sync" received says it has.
func zqSyncPublish(send func() error, stop <-chan struct{}) <-chan error {
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if err := send(); err != nil {
				done <- err
				return
			}
			select {
			case <-stop:
				done <- nil
				return
			case <-t.C:
			}
		}
	}()
	return done
}

// zqCheckSubscriber receives with recv until "a.end" and checks that,
// leaving out "sync", it got exactly zqWanted in order.
func zqCheckSubscriber(t *testing.T, recv func() [][]byte) {
	t.Helper()
	var got [][]string
	for {
		msg := recv()
		if len(msg) == 1 && string(msg[0]) == "sync" {
			continue
		}
		var frames []string
		for _, f := range msg {
			frames = append(frames, string(f))
		}
		got = append(got, frames)
		if frames[0] == "a.end" || len(got) > len(zqPublished) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(zqWanted) {
		t.Fatalf("subscriber got %q, want %q", got, zqWanted)
	}
}

func TestZmq4PubSub(t *testing.T) {
	t.Run("ours PUB binds", func(t *testing.T) {
		ctx := zqContext(t)
		pub := zqOurs(t, PUB, Config{}, "")
		sub := zmq4.NewSub(ctx, zqOptions()...)
		zqDial(t, sub, pub.Endpoint())
		for _, topic := range []string{"a.", "sync"} {
			if err := sub.SetOption(zmq4.OptionSubscribe, topic); err != nil {
				t.Fatal(err)
			}
		}
		stop := make(chan struct{})
		syncDone := zqSyncPublish(func() error { return pub.SendContext(ctx, []byte("sync")) }, stop)
		zqEqual(t, "first message", zqRecv(t, sub), "sync")
		close(stop)
		if err := <-syncDone; err != nil {
			t.Fatal(err)
		}
		for _, m := range zqPublished {
			zqOurSend(ctx, t, pub, m...)
		}
		zqCheckSubscriber(t, func() [][]byte { return zqRecv(t, sub) })
	})
	t.Run("zmq4 PUB binds", func(t *testing.T) {
		ctx := zqContext(t)
		pub := zmq4.NewPub(ctx, zqOptions()...)
		ep := zqListen(t, pub)
		sub := zqOurs(t, SUB, Config{}, ep)
		for _, topic := range []string{"a.", "sync"} {
			if err := sub.Subscribe([]byte(topic)); err != nil {
				t.Fatal(err)
			}
		}
		stop := make(chan struct{})
		syncDone := zqSyncPublish(func() error { return pub.Send(zmq4.NewMsgString("sync")) }, stop)
		zqEqual(t, "first message", zqOurRecv(ctx, t, sub), "sync")
		close(stop)
		if err := <-syncDone; err != nil {
			t.Fatal(err)
		}
		for _, m := range zqPublished {
			zqSend(t, pub, m...)
		}
		zqCheckSubscriber(t, func() [][]byte { return zqOurRecv(ctx, t, sub) })
	})
}

// zqPushMessage is message i of a PUSH/PULL run: every 7th is multipart.
func zqPushMessage(i int) []string {
	m := []string{fmt.Sprintf("msg %05d", i)}
	if i%7 == 0 {
		m = append(m, "", strings.Repeat("z", i%300))
	}
	return m
}

func TestZmq4PushPull(t *testing.T) {
	const n = 2000
	check := func(t *testing.T, recv func() [][]byte) {
		t.Helper()
		for i := range n {
			zqEqual(t, fmt.Sprint("message ", i), recv(), zqPushMessage(i)...)
		}
	}
	t.Run("ours PULL binds", func(t *testing.T) {
		ctx := zqContext(t)
		pull := zqOurs(t, PULL, Config{}, "")
		push := zmq4.NewPush(ctx, zqOptions()...)
		zqDial(t, push, pull.Endpoint())
		sent := make(chan error, 1)
		go func() {
			for i := range n {
				var fs [][]byte
				for _, f := range zqPushMessage(i) {
					fs = append(fs, []byte(f))
				}
				if err := push.Send(zmq4.NewMsgFrom(fs...)); err != nil {
					sent <- fmt.Errorf("message %d: %w", i, err)
					return
				}
			}
			sent <- nil
		}()
		check(t, func() [][]byte { return zqOurRecv(ctx, t, pull) })
		if err := <-sent; err != nil {
			t.Fatalf("zmq4 PUSH: %v", err)
		}
	})
	t.Run("zmq4 PULL binds", func(t *testing.T) {
		ctx := zqContext(t)
		pull := zmq4.NewPull(ctx, zqOptions()...)
		ep := zqListen(t, pull)
		push := zqOurs(t, PUSH, Config{}, ep)
		sent := make(chan error, 1)
		go func() {
			for i := range n {
				var fs [][]byte
				for _, f := range zqPushMessage(i) {
					fs = append(fs, []byte(f))
				}
				if err := push.SendContext(ctx, fs...); err != nil {
					sent <- fmt.Errorf("message %d: %w", i, err)
					return
				}
			}
			sent <- nil
		}()
		check(t, func() [][]byte { return zqRecv(t, pull) })
		if err := <-sent; err != nil {
			t.Fatalf("PUSH: %v", err)
		}
	})
}

// TestZmq4LargeMessages sends frames around the long-frame and
// direct-read thresholds both ways.
func TestZmq4LargeMessages(t *testing.T) {
	sizes := []int{0, 255, 256, directReadMin - 1, directReadMin, readBufSize + 1, 1 << 20}
	body := func(size int) []byte { return bytes.Repeat([]byte{byte(size)}, size) }
	ctx := zqContext(t)
	pull := zqOurs(t, PULL, Config{}, "")
	push := zmq4.NewPush(ctx, zqOptions()...)
	zqDial(t, push, pull.Endpoint())
	zpull := zmq4.NewPull(ctx, zqOptions()...)
	ep := zqListen(t, zpull)
	ours := zqOurs(t, PUSH, Config{}, ep)
	for _, size := range sizes {
		if err := push.Send(zmq4.NewMsgFrom(body(size), []byte("end"))); err != nil {
			t.Fatal(err)
		}
		if msg := zqOurRecv(ctx, t, pull); len(msg) != 2 || !bytes.Equal(msg[0], body(size)) || string(msg[1]) != "end" {
			t.Fatalf("%d bytes from zmq4: got %d frames", size, len(msg))
		}
		if err := ours.SendContext(ctx, body(size), []byte("end")); err != nil {
			t.Fatal(err)
		}
		if msg := zqRecv(t, zpull); len(msg) != 2 || !bytes.Equal(msg[0], body(size)) || string(msg[1]) != "end" {
			t.Fatalf("%d bytes to zmq4: got %d frames", size, len(msg))
		}
	}
}
