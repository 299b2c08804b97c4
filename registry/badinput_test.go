package registry_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/registry"
	"github.com/hydra-net/hydra/zmtp"
)

// TestBadInput sends malformed requests: each gets an ERR reply saying what
// is wrong, and the server goes on serving (the same peer and the others).
func TestBadInput(t *testing.T) {
	srv := startServer(t, registry.Config{MaxMetadataBytes: 1024})
	req := rawSocket(t, srv, zmtp.REQ)
	long := strings.Repeat("n", 300)
	bigMeta := map[string]string{"k": strings.Repeat("x", 2000)}
	valid := func(extra string) string {
		return `{"name":"svc","host":"10.0.0.1","port":80` + extra + `}`
	}
	cases := []struct {
		name   string
		frames []string
		code   string
		says   string
	}{
		{"unknown verb", []string{"FROBNICATE", "{}"}, "unknown_verb", `unknown verb "FROBNICATE"`},
		{"binary verb", []string{"\xff\xfe", ""}, "unknown_verb", `"\xff\xfe"`},
		{"empty verb", []string{"", "{}"}, "bad_request", "verb frame is 0 bytes"},
		{"three frames", []string{"LOOKUP", `{"name":"a"}`, "extra"}, "bad_request", "request has 3 frames"},
		{"body not JSON", []string{"REGISTER", "hello"}, "bad_request", "body is not a JSON object"},
		{"body truncated", []string{"REGISTER", `{"name":`}, "bad_request", "not valid JSON"},
		{"body an array", []string{"LOOKUP", `[1,2]`}, "bad_request", "not a JSON object"},
		{"missing name", []string{"REGISTER", `{"host":"h","port":1}`}, "bad_request", "name is missing"},
		{"missing host", []string{"REGISTER", `{"name":"a","port":1}`}, "bad_request", "host is missing"},
		{"missing port", []string{"REGISTER", `{"name":"a","host":"h"}`}, "bad_request", "port is missing"},
		{"port out of range", []string{"REGISTER", `{"name":"a","host":"h","port":70000}`}, "bad_request", "port 70000 out of range 1-65535"},
		{"port zero", []string{"REGISTER", `{"name":"a","host":"h","port":0}`}, "bad_request", "port 0 out of range"},
		{"port a string", []string{"REGISTER", `{"name":"a","host":"h","port":"80"}`}, "bad_request", `field "port": want an integer`},
		{"port fractional", []string{"REGISTER", `{"name":"a","host":"h","port":80.5}`}, "bad_request", `field "port"`},
		{"name too long", []string{"REGISTER", `{"name":"` + long + `","host":"h","port":1}`}, "bad_request", "name is 300 bytes long, the limit is 255"},
		{"name with control character", []string{"REGISTER", `{"name":"a\u0007b","host":"h","port":1}`}, "bad_request", "control character U+0007"},
		{"name with newline", []string{"LOOKUP", `{"name":"a\nb"}`}, "bad_request", "control character U+000A"},
		{"name with space", []string{"LOOKUP", `{"name":"a b"}`}, "bad_request", "whitespace U+0020"},
		{"host with port", []string{"REGISTER", `{"name":"a","host":"1.2.3.4:80","port":1}`}, "bad_request", "give the port in"},
		{"host with scheme", []string{"REGISTER", `{"name":"a","host":"http://x","port":1}`}, "bad_request", "without scheme"},
		{"upper-case proto", []string{"REGISTER", valid(`,"proto":"HTTP"`)}, "bad_request", `proto "HTTP"`},
		{"oversized metadata", []string{"REGISTER", mustJSON(t, map[string]any{"name": "a", "host": "h", "port": 1, "meta": bigMeta})}, "bad_request", "metadata is 2001 bytes (keys plus values), the limit is 1024"},
		{"meta value a number", []string{"REGISTER", valid(`,"meta":{"a":1}`)}, "bad_request", `want a string`},
		{"meta key empty", []string{"REGISTER", valid(`,"meta":{"":"x"}`)}, "bad_request", "meta key is missing or empty"},
		{"ttl too short", []string{"REGISTER", valid(`,"ttl":0.001`)}, "bad_request", "ttl 0.001s out of range [1, 86400] seconds"},
		{"ttl negative", []string{"REGISTER", valid(`,"ttl":-5`)}, "bad_request", "ttl must be a positive number"},
		{"bad protocol version", []string{"PING", `{"v":2}`}, "bad_version", "protocol version 2 not supported: this server speaks 1"},
		{"id an object", []string{"PING", `{"id":{"a":1}}`}, "bad_request", "id must be a number or a string"},
		{"bad token", []string{"REGISTER", valid(`,"token":"short"`)}, "bad_request", "token must be 16 to 128 bytes"},
		{"bad instance", []string{"REGISTER", valid(`,"instance":"a/b"`)}, "bad_request", `instance "a/b"`},
		{"deregister without token", []string{"DEREGISTER", `{}`}, "bad_request", "token must be"},
		{"update unknown", []string{"UPDATE", `{"token":"0123456789abcdef0123","instance":"nope"}`}, "not_found", "no instance nope"},
		{"lookup without name", []string{"LOOKUP", `{}`}, "bad_request", "name is missing"},
		{"unwatch unknown", []string{"UNWATCH", `{"watch":"w1"}`}, "not_found", "no watch w1"},
		{"protocol version a string", []string{"PING", `{"v":"1"}`}, "bad_version", `given as JSON string: want the integer 1`},
		{"protocol version a fraction", []string{"PING", `{"v":1.0}`}, "bad_version", `given as JSON number 1.0`},
		{"id a string of 129 bytes", []string{"PING", `{"id":"` + strings.Repeat("i", 129) + `"}`}, "bad_request", "id must be a number or a string of at most 128 bytes"},
		{"id a number of 129 digits", []string{"PING", `{"id":` + strings.Repeat("9", 129) + `}`}, "bad_request", "id must be a number"},
		{"empty token", []string{"REGISTER", valid(`,"token":""`)}, "bad_request", "token is empty: leave it out"},
		{"empty instance", []string{"REGISTER", valid(`,"instance":""`)}, "bad_request", "instance is empty"},
		{"empty watch", []string{"UNWATCH", `{"watch" : ""}`}, "bad_request", "watch is empty"},
		{"list negative limit", []string{"LIST", `{"limit":-1}`}, "bad_request", "limit must not be negative"},
	}
	// Another client keeps looking up while the bad requests go in.
	other := rawSocket(t, srv, zmtp.DEALER)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := other.Send([]byte("LOOKUP"), []byte(`{"name":"svc"}`)); err != nil {
				t.Error(err)
				return
			}
			rep, err := other.Recv()
			if err != nil || string(rep[0]) != "OK" {
				t.Errorf("other client: %q %v", rep, err)
				return
			}
		}
	}()
	for _, c := range cases {
		frames := make([][]byte, len(c.frames))
		for i, f := range c.frames {
			frames[i] = []byte(f)
		}
		rep := roundTrip(t, req, frames...)
		if len(rep) != 2 || string(rep[0]) != "ERR" {
			t.Errorf("%s: reply %q, want ERR", c.name, rep)
			continue
		}
		var body struct{ Code, Error string }
		if err := json.Unmarshal(rep[1], &body); err != nil {
			t.Errorf("%s: ERR body %q: %v", c.name, rep[1], err)
			continue
		}
		if body.Code != c.code || !strings.Contains(body.Error, c.says) {
			t.Errorf("%s: got %s %q, want %s containing %q", c.name, body.Code, body.Error, c.code, c.says)
		}
		mustOK(t, req, "PING", nil)
	}
	close(stop)
	wg.Wait()
	if st := srv.Stats(); st.Errors != int64(len(cases)) || st.Entries != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestOversizedRequest: a request over MaxRequestBytes costs the peer its
// connection (ZMTP refuses it before allocating); others are not affected.
func TestOversizedRequest(t *testing.T) {
	srv := startServer(t, registry.Config{MaxRequestBytes: 4096, MaxMetadataBytes: 1024})
	good := rawSocket(t, srv, zmtp.REQ)
	mustOK(t, good, "PING", nil)
	bad := rawSocket(t, srv, zmtp.DEALER)
	if err := bad.Send([]byte("REGISTER"), make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	mustOK(t, good, "PING", nil)
	// The bad peer reconnects and is served again when it behaves (a
	// request sent while its connection was being dropped is lost: retry).
	for try := 0; ; try++ {
		if err := bad.Send([]byte("PING")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		rep, err := bad.RecvContext(ctx)
		cancel()
		if err == nil {
			if string(rep[0]) != "OK" {
				t.Fatalf("after reconnect: %q", rep)
			}
			break
		}
		if try == 20 {
			t.Fatalf("no reply after reconnecting: %v", err)
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
