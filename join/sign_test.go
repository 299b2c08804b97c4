package join

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hydra-net/hydra/secure"
)

// TestOriginID: an origin id is a valid server id that names exactly one
// key, spelt one way.
func TestOriginID(t *testing.T) {
	s := fuzzKey(3)
	id := OriginID(s.Public)
	if !checkID(id) || len(id) != 52 {
		t.Fatalf("origin id %q", id)
	}
	if k, ok := OriginKey(id); !ok || k != s.Public {
		t.Fatalf("OriginKey(%q) = %v, %v", id, k, ok)
	}
	for _, bad := range []string{"", "s01", id[:51], id + "a", id[:51] + "b", "A" + id[1:]} {
		if k, ok := OriginKey(bad); ok && OriginID(k) != bad {
			t.Fatalf("OriginKey(%q) took a second spelling", bad)
		} else if ok && bad != id {
			t.Logf("%q names another key", bad)
		}
	}
}

// FuzzOriginKey: OriginKey never panics, and what it takes is the one
// spelling of its key.
func FuzzOriginKey(f *testing.F) {
	f.Add(OriginID(fuzzKey(1).Public))
	f.Fuzz(func(t *testing.T, s string) {
		if k, ok := OriginKey(s); ok && OriginID(k) != s {
			t.Fatalf("%q taken for key %s", s, OriginID(k))
		}
	})
}

// signedChange is a typical change: a set with a 170-byte entry.
func signedChange(s *secure.Signer) Change {
	id := OriginID(s.Public)
	c := Change{Origin: id, Seq: 1796419996208722, Prev: 1796419996208721, Op: OpSet,
		Entry: json.RawMessage(`{"name":"web","instance":"i-0123456789abcdef","host":"10.0.0.1","port":8080,"proto":"tcp","ttl":30,"origin":"` + id + `","version":3}`)}
	SignChange(s, &c)
	return c
}

// BenchmarkSignChange is what the origin pays per change.
func BenchmarkSignChange(b *testing.B) {
	s := fuzzKey(1)
	c := signedChange(s)
	b.ReportAllocs()
	for b.Loop() {
		SignChange(s, &c)
	}
}

// BenchmarkVerifyChange is what each other server pays per change (once:
// duplicates are dropped before the check).
func BenchmarkVerifyChange(b *testing.B) {
	s := fuzzKey(1)
	c := signedChange(s)
	j := &Join{cfg: Config{Signer: fuzzKey(2), TrustOrigin: func(k secure.SignPublicKey) bool { return k == s.Public }}}
	b.ReportAllocs()
	for b.Loop() {
		if !j.verifyChange(&c) {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkVerifyBeat is what each server pays per other origin per
// interval.
func BenchmarkVerifyBeat(b *testing.B) {
	s := fuzzKey(1)
	id := OriginID(s.Public)
	sig := SignBeat(s, id, 12345)
	j := &Join{cfg: Config{Signer: fuzzKey(2), TrustOrigin: func(k secure.SignPublicKey) bool { return k == s.Public }}}
	b.ReportAllocs()
	for b.Loop() {
		if !j.verifyBeat(id, 12345, sig) {
			b.Fatal("does not verify")
		}
	}
}

// FuzzDigestItem: the hand-read digest item is what encoding/json reads.
func FuzzDigestItem(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[1,2,3,"AQID"]`, `[1,2,3,""]`, `[1,2,3,"]`, `[18446744073709551615,0,0]`,
		`[18446744073709551616,0,0]`, `[01,2,3]`, `[1, 2, 3]`, `[1,2,3,"A\u0051ID"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseDigestItem(b)
		if !ok {
			return
		}
		var slow DigestItem
		if err := slow.unmarshalSlow(b); err != nil {
			t.Fatalf("%q: read by hand as %+v, encoding/json: %v", b, fast, err)
		}
		if fast.Seq != slow.Seq || fast.Beat != slow.Beat || fast.Age != slow.Age || !bytes.Equal(fast.Sig, slow.Sig) {
			t.Fatalf("%q: by hand %+v, encoding/json %+v", b, fast, slow)
		}
	})
}
