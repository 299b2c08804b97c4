package registry

import (
	"testing"
	"time"
)

// FuzzHandle feeds arbitrary requests to the server's handler (on a socket
// that is never bound: replies go nowhere) and checks that nothing panics
// and the limits hold. The seeds are valid and invalid requests of every
// verb.
func FuzzHandle(f *testing.F) {
	for _, s := range []struct{ verb, body string }{
		{"PING", ""},
		{"INFO", "{}"},
		{"REGISTER", `{"name":"web","host":"10.0.0.1","port":80,"proto":"http","meta":{"a":"b"},"ttl":2,"id":1}`},
		{"REGISTER", `{"name":"web","host":"::1","port":80,"token":"0123456789abcdef","instance":"abc","version":3}`},
		{"UPDATE", `{"token":"0123456789abcdef","instance":"abc","port":81,"meta":{}}`},
		{"HEARTBEAT", `{"token":"0123456789abcdef"}`},
		{"DEREGISTER", `{"token":"0123456789abcdef","instance":"abc"}`},
		{"LOOKUP", `{"name":"web","id":"x"}`},
		{"LIST", `{"entries":true,"limit":1,"after":"web\nabc"}`},
		{"WATCH", `{"name":"web"}`},
		{"UNWATCH", `{"watch":"w1"}`},
		{"lookup", `{"name":"a\u0007"}`},
		{"REGISTER", `{"name":"x","host":"h","port":1e99}`},
		{"PING", `{"v":2}`},
		{"\xff", `[`},
		{"SYNC", `{"t":"hello","id":"evil","boot":"b"}`},
		{"JOIN", `{"peer":"10.0.0.1"}`},
		{"REGISTER", `{"name":"web","host":"-oProxyCommand=id","port":22}`},
		{"REGISTER", `{"name":"web","host":"h","port":1,"token":"0123456789abcdef","instance":"` + newInstanceID("0123456789abcdef") + `"}`},
	} {
		f.Add(s.verb, []byte(s.body), uint8(2), []byte{})
	}
	f.Fuzz(func(t *testing.T, verb string, body []byte, nframes uint8, extra []byte) {
		s, err := NewServer(Config{MaxEntries: 8, MaxEntriesPerClient: 4, MaxWatches: 4, MaxWatchesPerPeer: 2, MaxListPage: 3, MinTTL: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		msg := [][]byte{[]byte("peer")}
		switch nframes % 5 {
		case 0:
		case 1:
			msg = append(msg, []byte(verb))
		case 2:
			msg = append(msg, []byte(verb), body)
		case 3:
			msg = append(msg, []byte{}, []byte(verb), body)
		case 4:
			msg = append(msg, []byte(verb), body, extra)
		}
		now := time.Now()
		for i := range 3 { // the same request again, and after expiry
			s.handle(msg, now.Add(time.Duration(i)*time.Second))
			s.sweep(now.Add(time.Duration(i) * time.Second))
		}
		if len(s.st.entries) > 8 || len(s.watches) > 4 {
			t.Fatalf("limits exceeded: %d entries, %d watches", len(s.st.entries), len(s.watches))
		}
		owned := 0
		for _, o := range s.st.owners {
			if len(o.entries) > 4 || len(o.entries) == 0 {
				t.Fatalf("owner with %d entries", len(o.entries))
			}
			owned += len(o.entries)
		}
		counted := 0
		for id, n := range s.st.quota {
			if n <= 0 || n > 4 {
				t.Fatalf("identity %q counted %d entries", id, n)
			}
			counted += n
		}
		if counted != owned {
			t.Fatalf("the quota counts %d entries, owners hold %d", counted, owned)
		}
	})
}
