package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

// maxInt1 is math.MaxInt+1, the magnitude of math.MinInt, as text.
var maxInt1 = strconv.FormatUint(uint64(math.MaxInt)+1, 10)

// TestDecodeFlatAccepts checks bodies the fast path must take, each against
// json.Unmarshal.
func TestDecodeFlatAccepts(t *testing.T) {
	for _, in := range []string{
		`{}`,
		" {\t}\r\n",
		`{"id":123,"name":"bench-7"}`,
		`{"token":"0123456789abcdef","id":5}`,
		`{"id":"req-1","name":"web"}`,
		"{ \"id\" : \"x\" ,\n\t\"name\":\"web\" } ",
		`{"id":0}`,
		`{"id":-0}`,
		`{"id":""}`,
		`{"id":-18446744073709551615}`,
		`{"v":1,"id":1,"name":"n","host":"h","port":80,"proto":"tcp","token":"t","instance":"i","version":18446744073709551615,"entries":true,"after":"a","limit":-5,"watch":"w"}`,
		`{"entries":false,"version":0}`,
		`{"port":9223372036854775807}`,
		`{"port":-9223372036854775808}`,
		`{"v":-9223372036854775808}`,
		`{"limit":` + strconv.Itoa(math.MaxInt) + `}`,
		`{"limit":-` + maxInt1 + `}`,
		`{"name":""}`,
		"{\"name\":\" !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~\"}",
		`{"name":"a b"}`, // valid JSON; the name check refuses it later
	} {
		var fast, want request
		if !decodeFlat([]byte(in), &fast) {
			t.Errorf("%q: refused", in)
			continue
		}
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Errorf("%q: json.Unmarshal: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(fast, want) {
			t.Errorf("%q: got %s, json.Unmarshal gives %s", in, dumpRequest(fast), dumpRequest(want))
		}
	}

	var r request
	if !decodeFlat([]byte(`{"id":123,"name":"bench-7"}`), &r) || string(r.ID) != "123" || r.Name == nil || *r.Name != "bench-7" {
		t.Errorf("lookup: got %s", dumpRequest(r))
	}
	r = request{}
	if !decodeFlat([]byte(`{"token":"tok","id":"a"}`), &r) || string(r.ID) != `"a"` || r.Token != "tok" {
		t.Errorf("heartbeat: got %s", dumpRequest(r))
	}
}

// TestDecodeFlatRefuses checks bodies the fast path must leave to
// json.Unmarshal (valid JSON or not), and that it leaves r alone.
func TestDecodeFlatRefuses(t *testing.T) {
	for _, in := range []string{
		``, ` `, `[]`, `{`, `}`, `"x"`, `{}}`, `{} {}`, `{}x`, "{}\v", "\ufeff{}",
		`{,}`, `{"name":"x",}`, `{"name" "x"}`, `{"name":"x"`, `{"name":"x"}}`, `{"name":"x"}{"name":"y"}`,
		`{name:"x"}`, `{'name':"x"}`, `{"name":'x'}`, `{"name":x}`,
		`{"Name":"x"}`, `{"NAME":"x"}`, `{"nam\u0065":"x"}`, `{"unknown":"x"}`, `{"meta":{}}`, `{"ttl":1}`,
		`{"name":"x","name":"y"}`, `{"id":1,"id":2}`,
		`{"name":null}`, `{"id":null}`, `{"port":null}`, `{"entries":null}`,
		`{"name":"a\"b"}`, `{"name":"a\\b"}`, `{"name":"\u0041"}`, "{\"name\":\"a\tb\"}", "{\"name\":\"\x7f\"}",
		`{"name":"é"}`, "{\"name\":\"\xff\"}", `{"name":1}`, `{"name":true}`,
		`{"id":1.5}`, `{"id":1e3}`, `{"id":+1}`, `{"id":01}`, `{"id":-}`, `{"id":true}`, `{"id":[1]}`, `{"id":{}}`,
		`{"id":18446744073709551616}`,
		`{"port":1.0}`, `{"port":1e3}`, `{"port":1E3}`, `{"port":01}`, `{"port":-01}`, `{"port":00}`, `{"port":-}`,
		`{"port":}`, `{"port":"80"}`, `{"port":9223372036854775808}`, `{"port":-9223372036854775809}`,
		`{"v":99999999999999999999999}`,
		`{"version":-1}`, `{"version":-0}`, `{"version":18446744073709551616}`, `{"version":1.0}`,
		`{"limit":` + maxInt1 + `}`, `{"limit":-` + strconv.FormatUint(uint64(math.MaxInt)+2, 10) + `}`, `{"limit":"1"}`,
		`{"entries":1}`, `{"entries":tru}`, `{"entries":True}`, `{"entries":truex}`, `{"entries":"true"}`,
	} {
		var r request
		if decodeFlat([]byte(in), &r) {
			t.Errorf("%q: accepted, want the json.Unmarshal fallback", in)
		}
		if !reflect.DeepEqual(r, request{}) {
			t.Errorf("%q: refused but changed the request: %s", in, dumpRequest(r))
		}
	}
}

// TestDecodeFlatMixes builds many bodies from keys and values near the
// edges of what the fast path takes (which random fuzzing seldom reaches)
// and checks each it accepts against json.Unmarshal.
func TestDecodeFlatMixes(t *testing.T) {
	keys := []string{"id", "name", "host", "proto", "token", "instance", "after", "watch",
		"port", "v", "limit", "version", "entries", "Name", "ttl"}
	vals := []string{`0`, `-0`, `7`, `-7`, `01`, `1.5`, `1e2`, `""`, `"x y"`, `"a\"b"`, `true`, `false`, `null`,
		`9223372036854775807`, `-9223372036854775808`, `9223372036854775808`, `18446744073709551615`,
		`-` + maxInt1, maxInt1, `{}`, `[]`}
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for range 20000 {
		var in []byte
		in = append(in, '{')
		for i := range rng.IntN(4) {
			if i > 0 {
				in = append(in, ',')
			}
			if rng.IntN(4) == 0 {
				in = append(in, " \t\n\r"[rng.IntN(4)])
			}
			in = strconv.AppendQuote(in, keys[rng.IntN(len(keys))])
			in = append(in, ':')
			in = append(in, vals[rng.IntN(len(vals))]...)
		}
		in = append(in, '}')
		var fast, want request
		if !decodeFlat(in, &fast) {
			continue
		}
		accepted++
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("%q: accepted, but json.Unmarshal fails: %v", in, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: got %s, json.Unmarshal gives %s", in, dumpRequest(fast), dumpRequest(want))
		}
	}
	if accepted < 1000 {
		t.Errorf("only %d of 20000 bodies accepted", accepted)
	}
}

// TestDecodeFlatMerges checks that fields already set in r are kept or
// overwritten as json.Unmarshal does (the server always starts from a zero
// request, but decodeBody does not rely on it).
func TestDecodeFlatMerges(t *testing.T) {
	prefill := func() request {
		name, port := "old", int64(1)
		return request{ID: make(json.RawMessage, 1, 16), Name: &name, Port: &port, Token: "t", Limit: 3}
	}
	in := []byte(`{"id":"x","name":"new","instance":"i"}`)
	fast, want := prefill(), prefill()
	namePtr, idArr := fast.Name, &fast.ID[0]
	if !decodeFlat(in, &fast) {
		t.Fatal("refused")
	}
	if err := json.Unmarshal(in, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Errorf("got %s, json.Unmarshal gives %s", dumpRequest(fast), dumpRequest(want))
	}
	if fast.Name != namePtr || &fast.ID[0] != idArr {
		t.Error("a set pointer or the id's array was replaced, not reused as json.Unmarshal does")
	}
}

// FuzzDecodeFlat checks the fast path against json.Unmarshal: whatever it
// accepts, json.Unmarshal accepts too and decodes to the same request, and
// what it refuses it leaves untouched.
func FuzzDecodeFlat(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		b := bytes.Clone(in)
		var fast, want request
		if !decodeFlat(b, &fast) {
			if !reflect.DeepEqual(fast, request{}) {
				t.Fatalf("%q: refused but changed the request: %s", in, dumpRequest(fast))
			}
			return
		}
		clear(b) // the request must not share the body's buffer, which is reused
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("%q: accepted, but json.Unmarshal fails: %v", in, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: got %s, json.Unmarshal gives %s", in, dumpRequest(fast), dumpRequest(want))
		}
	})
}

func dumpRequest(r request) string {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Sprintf("%+v", r)
	}
	return string(b)
}

// BenchmarkDecodeBody decodes the hot requests' bodies (LOOKUP, HEARTBEAT).
func BenchmarkDecodeBody(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"lookup", `{"id":123,"name":"bench-7"}`},
		{"heartbeat", `{"token":"0123456789abcdef0123456789abcdef","id":5}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.ReportAllocs()
			var r request
			for b.Loop() {
				r = request{}
				if err := decodeBody(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
