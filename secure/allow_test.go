package secure

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serverPub is the KEY.pub text join's keygen writes: the zcert public
// certificate with a sign-key line in its curve section.
func serverPub(kp KeyPair) string {
	s := kp.Signer()
	return "#   ZeroMQ CURVE Public Certificate\n\nmetadata\ncurve\n    public-key = \"" + kp.Public.String() +
		"\"\n    sign-key = \"" + s.Public.String() + "\"\n"
}

// TestServerListCarriesSignKeys: a servers' list takes KEY.pub content and
// "CURVE SIGN" lines, and trusts exactly the signing keys it lists.
func TestServerListCarriesSignKeys(t *testing.T) {
	a, b, c := newKeyPair(t), newKeyPair(t), newKeyPair(t)
	sa, sb, sc := a.Signer(), b.Signer(), c.Signer()
	text := serverPub(a) + "\n" + b.Public.String() + " " + sb.Public.String() + "  # bravo\n"
	path := filepath.Join(t.TempDir(), "servers")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := LoadServerList(path)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Servers() || l.Len() != 2 || !l.Authorize(a.Public) || !l.Authorize(b.Public) || l.Authorize(c.Public) {
		t.Fatalf("servers' list: %v", l.Keys())
	}
	if !l.TrustsSigner(sa.Public) || !l.TrustsSigner(sb.Public) || l.TrustsSigner(sc.Public) {
		t.Error("TrustsSigner does not match the list")
	}
	if k, ok := l.SignKey(b.Public); !ok || k != sb.Public {
		t.Errorf("SignKey(b) = %v %v", k, ok)
	}
	// A sign key never vouches for a Curve key used as one: the lists differ.
	var asSign SignPublicKey
	copy(asSign[:], a.Public[:])
	if l.TrustsSigner(asSign) {
		t.Error("a Curve key taken as a signing key")
	}

	// A line without a sign key: error naming file and line, with the fix;
	// the old list stays.
	if err := os.WriteFile(path, []byte(text+"# c\n"+c.Public.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = l.Reload()
	if err == nil || !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), "line 10") ||
		!strings.Contains(err.Error(), "sign-key") || !strings.Contains(err.Error(), "CURVEKEY SIGNKEY") {
		t.Errorf("servers' list line without a sign key: %v", err)
	}
	if l.Len() != 2 || l.Authorize(c.Public) {
		t.Error("a failed reload changed the list")
	}
	// The same file is a fine clients' list: sign keys are optional there.
	if cl, err := LoadAllowList(path); err != nil || cl.Len() != 3 || cl.TrustsSigner(sc.Public) || !cl.TrustsSigner(sa.Public) {
		t.Errorf("as a clients' list: %v", err)
	}
	// A KEY.pub without the sign-key line (written before signing) names the public-key line.
	old := "metadata\ncurve\n    public-key = \"" + a.Public.String() + "\"\n"
	if _, err := ParseKeyList(strings.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadServerList(path); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("old KEY.pub as a server: %v", err)
	}
}

// TestKeyListLines: what a line may hold after its key, and where a
// certificate's sign-key belongs.
func TestKeyListLines(t *testing.T) {
	a, b := newKeyPair(t), newKeyPair(t)
	sa, sb := a.Signer(), b.Signer()
	for _, tc := range []struct {
		text string
		want string // error substring, "" for none
	}{
		{a.Public.String() + " " + sa.Public.String() + " extra", "line 1: text after the keys"},
		{a.Public.String() + " nonsense", "line 1: after the key, \"nonsense\" is neither"},
		{"metadata\ncurve\n    sign-key = \"short\"\n", "line 3: sign-key \"short\""},
		{a.Public.String() + "\nmetadata\ncurve\n    public-key = \"" + b.Public.String() + "\"\n    sign-key = \"" + sb.Public.String() + "\"\n", ""},
		// sign-key first, then public-key: the same certificate.
		{"metadata\ncurve\n    sign-key = \"" + sa.Public.String() + "\"\n    public-key = \"" + a.Public.String() + "\"\n", ""},
	} {
		keys, err := ParseKeyList(strings.NewReader(tc.text))
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		for _, k := range keys {
			want := map[PublicKey]SignPublicKey{a.Public: sa.Public, b.Public: sb.Public}[k.Key]
			if k.HasSign && k.Sign != want {
				t.Errorf("%q: key %s got sign key %s", tc.text, k.Key, k.Sign)
			}
		}
	}
	// The bare key before a certificate never takes that certificate's sign key.
	keys, _ := ParseKeyList(strings.NewReader(a.Public.String() + "\nmetadata\ncurve\n    sign-key = \"" + sb.Public.String() + "\"\n    public-key = \"" + b.Public.String() + "\"\n"))
	if len(keys) != 2 || keys[0].HasSign || !keys[1].HasSign || keys[1].Sign != sb.Public {
		t.Errorf("keys %+v", keys)
	}
}

// FuzzParseKeyList: any text parses or fails without panicking, and what
// it gives writes back as "KEY [SIGN]" lines that parse to the same.
func FuzzParseKeyList(f *testing.F) {
	f.Add([]byte("# comment\n" + docServerPublic + "  # alice\n"))
	f.Add([]byte("metadata\ncurve\n    public-key = \"" + docServerPublic + "\"\n    sign-key = \"" + docServerPublic + "\"\n"))
	f.Add([]byte("metadata\ncurve\n    sign-key = \"" + docServerPublic + "\"\n    secret-key = \"x\"\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		keys, err := ParseKeyList(strings.NewReader(string(text)))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k.Key.String())
			if k.HasSign {
				b.WriteString(" " + k.Sign.String())
			}
			b.WriteString("\n")
		}
		again, err := ParseKeyList(strings.NewReader(b.String()))
		if err != nil || len(again) != len(keys) {
			t.Fatalf("%q: written back as %q: %v", text, b.String(), err)
		}
		for i := range keys {
			if again[i].Key != keys[i].Key || again[i].HasSign != keys[i].HasSign || again[i].Sign != keys[i].Sign {
				t.Fatalf("%q: key %d: %+v, then %+v", text, i, keys[i], again[i])
			}
		}
	})
}
