package abuse

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// loaderIP is where the test's own bulk registrations come from: neither
// the well-behaved client's address nor an attacker's.
var loaderIP = net.IPv4(127, 0, 0, 10)

// pipeline sends n requests made by req on one raw DEALER from ip, at most
// window unanswered at a time, and fails t on any reply but OK.
func pipeline(t testing.TB, addr string, ip net.IP, n, window int, req func(i int) (verb, body string)) {
	t.Helper()
	pipelineUntil(t, time.Now().Add(60*time.Second), addr, ip, n, window, req)
}

// pipelineUntil is pipeline that gives up at deadline.
func pipelineUntil(t testing.TB, deadline time.Time, addr string, ip net.IP, n, window int, req func(i int) (verb, body string)) {
	t.Helper()
	p, err := dialPeer(ip, addr, true)
	if err != nil {
		t.Fatalf("loader: %v", err)
	}
	defer p.Close()
	_ = p.c.SetDeadline(deadline)
	sent, got := 0, 0
	var buf []byte
	for got < n {
		buf = buf[:0]
		for sent < n && sent-got < window {
			v, b := req(sent)
			buf = append(buf, request(v, b)...)
			sent++
		}
		if len(buf) > 0 {
			if _, err := p.c.Write(buf); err != nil {
				t.Fatalf("loader: write: %v", err)
			}
		}
		m, err := p.msg()
		if err != nil {
			t.Fatalf("loader: %d of %d answered: %v", got, n, err)
		}
		if len(m) < 1 || string(m[0]) != "OK" {
			t.Fatalf("loader: reply %d: %q", got, m)
		}
		got++
	}
}

// bigMeta is a metadata object of about size bytes.
func bigMeta(size int, salt int) string {
	return fmt.Sprintf(`{"m":"%d%s"}`, salt, strings.Repeat("x", size-1-len(fmt.Sprint(salt))-8))
}

// registerBig registers n entries of name with ~4 KB metadata each.
func registerBig(t testing.TB, s *server, name string, n int, meta int) {
	t.Helper()
	pipeline(t, s.addr, loaderIP, n, 64, func(i int) (string, string) {
		return "REGISTER", fmt.Sprintf(`{"token":"abuse-loader-token-0001","name":"%s","host":"127.0.0.1","port":%d,"ttl":3600,"meta":%s}`,
			name, 1+i%65000, bigMeta(meta, i))
	})
}
