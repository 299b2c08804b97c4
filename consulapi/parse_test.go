package consulapi

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseRegistration(t *testing.T) {
	r, err := ParseRegistration([]byte(`{"Name":"web","Port":80,"Tags":["a"],"Meta":{"k":"v"},"Check":{"TTL":"15s","DeregisterCriticalServiceAfter":"1m"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "web" || r.Check == nil || r.Check.TTL != 15*time.Second || r.Check.CheckID != "service:web" || r.Check.DeregisterAfter != time.Minute {
		t.Fatalf("%+v %+v", r, r.Check)
	}
	// Consul decodes keys case-insensitively; python-consul 0.7.1 sends lower case.
	r, err = ParseRegistration([]byte(`{"name":"w","id":"w-2","port":1,"check":{"ttl":"10s"}}`))
	if err != nil || r.ID != "w-2" || r.Check.TTL != 10*time.Second || r.Check.CheckID != "service:w-2" {
		t.Fatalf("lower case: %+v %v", r, err)
	}
	r, err = ParseRegistration([]byte(`{"Name":"w","Checks":[{"CheckID":"c1","TTL":"5s","Status":"passing"}]}`))
	if err != nil || r.Check.CheckID != "c1" || r.Check.Status != StatusPassing {
		t.Fatalf("Checks: %+v %v", r, err)
	}
	for _, bad := range []string{`{"Name":"w","Check":{"TTL":"x"}}`, `{"Name":"w","Check":{"TTL":"-1s"}}`,
		`{"Name":"w","Check":{"TCP":"a:1","Interval":"1s"}}`, `{"Name":"w","Checks":[{"TTL":"1s"},{"TTL":"2s"}]}`,
		`{"Name":"w","Port":70000}`, `{"Name":"w"} {}`, `[]`, `{"Name":"w","Check":{"TTL":"1s","Status":"bogus"}}`,
		`{"Name":"w","Kind":"connect-proxy"}`, `{"Name":"w","Namespace":"x"}`} {
		if _, err := ParseRegistration([]byte(bad)); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", bad, err)
		}
	}
}

// TestParseRegistrationTruncated: every prefix of a valid body is refused
// with ErrDecode, never a panic or a half registration.
func TestParseRegistrationTruncated(t *testing.T) {
	body := `{"ID":"w1","Name":"web","Address":"10.0.0.1","Port":80,"Tags":["a","b"],"Meta":{"k":"v"},"Check":{"CheckID":"c","TTL":"10s","Status":"passing"}}`
	if _, err := ParseRegistration([]byte(body)); err != nil {
		t.Fatal(err)
	}
	for i := range len(body) {
		if _, err := ParseRegistration([]byte(body[:i])); !errors.Is(err, ErrDecode) {
			t.Fatalf("prefix %q: %v, want ErrDecode", body[:i], err)
		}
	}
}

func TestParseCheckUpdate(t *testing.T) {
	if u, err := ParseCheckUpdate([]byte(`{"Status":"warning","Output":"slow"}`)); err != nil || u.Status != StatusWarning {
		t.Fatalf("%+v %v", u, err)
	}
	body := `{"Status":"passing"}`
	for i := range len(body) {
		if _, err := ParseCheckUpdate([]byte(body[:i])); !errors.Is(err, ErrDecode) {
			t.Fatalf("prefix %q: %v", body[:i], err)
		}
	}
}

func TestParseQuery(t *testing.T) {
	q, err := ParseQuery(url.Values{"index": {"7"}, "wait": {"120000ms"}, "stale": {""}, "passing": {""}, "tag": {"a", "b"}}, "dc1")
	if err != nil || q.Index != 7 || q.Wait != 2*time.Minute || !q.Passing || len(q.Tags) != 2 {
		t.Fatalf("%+v %v", q, err)
	}
	if q, _ := ParseQuery(url.Values{"wait": {"1h"}}, "dc1"); q.Wait != MaxWait {
		t.Fatalf("wait 1h: %v, want the %v maximum", q.Wait, MaxWait)
	}
	if q, _ := ParseQuery(url.Values{}, "dc1"); q.Wait != DefaultWait || q.Index != 0 {
		t.Fatalf("defaults: %+v", q)
	}
	if q, _ := ParseQuery(url.Values{"passing": {"false"}}, "dc1"); q.Passing {
		t.Fatal("passing=false is passing")
	}
	for _, bad := range []url.Values{{"index": {"-1"}}, {"wait": {"x"}}, {"filter": {"a"}}, {"near": {"_agent"}}, {"passing": {"maybe"}}, {"ns": {"x"}}} {
		if _, err := ParseQuery(bad, "dc1"); !errors.Is(err, ErrDecode) {
			t.Errorf("%v: %v, want ErrDecode", bad, err)
		}
	}
	if _, err := ParseQuery(url.Values{"dc": {"dc2"}}, "dc1"); !errors.Is(err, ErrNoDatacenter) {
		t.Errorf("dc2: %v", err)
	}
}

// FuzzParseRegistration: hostile bodies never panic; what parses has a
// name, an ID, and tags with no comma.
func FuzzParseRegistration(f *testing.F) {
	f.Add([]byte(`{"Name":"web","Port":80,"Check":{"TTL":"10s"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRegistration(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error without ErrDecode: %v", err)
			}
			return
		}
		if r.Name == "" || r.ID == "" || r.Port < 0 || r.Port > 65535 {
			t.Fatalf("parsed %+v", r)
		}
		for _, tag := range r.Tags {
			if tag == "" || strings.Contains(tag, ",") {
				t.Fatalf("tag %q", tag)
			}
		}
		if r.Check != nil && (r.Check.TTL <= 0 || r.Check.CheckID == "") {
			t.Fatalf("check %+v", r.Check)
		}
	})
}
