package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"github.com/hydra-net/hydra/consulapi"
)

// minHTTPToken is the shortest token --http-token-file accepts.
const minHTTPToken = 16

// httpTokens is the token file's tokens, by their SHA-256, each to its
// client identity ("token:" and 8 hex digits of the hash: logs never show
// a token).
type httpTokens map[[32]byte]string

// readTokens reads a token file.
func readTokens(path string) (httpTokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("http token file: %w", err)
	}
	t := httpTokens{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		tok := strings.TrimSpace(sc.Text())
		if tok == "" || strings.HasPrefix(tok, "#") {
			continue
		}
		if len(tok) < minHTTPToken || strings.ContainsAny(tok, " \t") {
			return nil, fmt.Errorf("http token file %s:%d: a token is one word of at least %d bytes", path, line, minHTTPToken)
		}
		h := sha256.Sum256([]byte(tok))
		t[h] = "token:" + hex.EncodeToString(h[:4])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("http token file %s: %w", path, err)
	}
	return t, nil
}

// access is the listener's rule: loopback may do everything; beyond it a
// token from the file may too, an anonymous client may read only with
// RemoteReads, and write never.
type access struct {
	tokens      atomic.Pointer[httpTokens]
	remoteReads bool
}

type identityKey struct{}

// identity is who a request is (set by the middleware).
type identity struct {
	id string // "" anonymous
}

func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}

func loopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			return false
		}
		a, err := netip.ParseAddr(host)
		return err == nil && a.Unmap().IsLoopback()
	}
	return ap.Addr().Unmap().IsLoopback()
}

// who is a request's identity: consulapi.Loopback, a token's identity, or
// "" (anonymous).
func (ac *access) who(r *http.Request) string {
	if loopback(r.RemoteAddr) {
		return consulapi.Loopback
	}
	tok := requestToken(r)
	if tok == "" {
		return ""
	}
	if t := ac.tokens.Load(); t != nil {
		if id, ok := (*t)[sha256.Sum256([]byte(tok))]; ok {
			return id
		}
	}
	return ""
}

// middleware refuses what the rule refuses and records the identity for
// consulapi (whose GET writes, for python-consul, it cannot tell by
// method).
func (ac *access) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ac.who(r)
		if id == "" {
			read := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
			switch {
			case !read:
				httpDenied(w, "Permission denied: writes from beyond loopback need a token (X-Consul-Token; --http-token-file)")
				return
			case !ac.remoteReads:
				httpDenied(w, "Permission denied: reads from beyond loopback need a token (X-Consul-Token; --http-token-file) or --http-remote-reads")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, identity{id})))
	})
}

func httpDenied(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	w.Write([]byte(msg))
}

// requestIdentity is consulapi.Config.Identity: the middleware's verdict.
func requestIdentity(r *http.Request) (string, bool) {
	id, _ := r.Context().Value(identityKey{}).(identity)
	return id.id, id.id != ""
}
