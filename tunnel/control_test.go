package tunnel

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

var sampleMessages = []Message{
	Hello{Version: 1, Server: "a1b2"},
	Services{Entries: []Shared{{Name: "web", Instance: "i1", Proto: "http", Meta: map[string]string{"k": "v"}, Origin: "a1b2", Version: 3}}},
	Services{},
	Bye{},
	Refused{Reason: "key not on the allow-list"},
	Refused{},
	Unknown{T: "future"},
}

// FuzzControlMsg: the control-stream decoder never panics, errors wrap
// ErrBadMessage or are io.ErrUnexpectedEOF, and a message it accepts
// re-encodes to a frame that decodes the same. Each input is also read
// split in two, as a stream delivers it.
func FuzzControlMsg(f *testing.F) {
	for _, m := range sampleMessages {
		f.Add(m.Append(nil))
	}
	f.Add([]byte("\x00\x00\x00\x02{}"))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := ParseMessage(b)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) && err != io.ErrUnexpectedEOF {
				t.Fatalf("error %v neither wraps ErrBadMessage nor is io.ErrUnexpectedEOF", err)
			}
			return
		}
		frame, err := readFrame(bytes.NewReader(b), nil)
		if err != nil || !bytes.Equal(frame, b[:n]) {
			t.Fatalf("readFrame: %q, %v; ParseMessage took %d bytes", frame, err, n)
		}
		half := len(b) / 2
		frame2, err := readFrame(io.MultiReader(bytes.NewReader(b[:half]), bytes.NewReader(b[half:])), nil)
		if err != nil || !bytes.Equal(frame, frame2) {
			t.Fatalf("split read: %v", err)
		}
		enc := m.Append(nil)
		m2, n2, err := ParseMessage(enc)
		if err != nil || n2 != len(enc) {
			t.Fatalf("re-encoded %q does not parse: %d, %v", enc, n2, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n%#v\n%#v", m, m2)
		}
		if enc2 := m2.Append(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%q\n%q", enc, enc2)
		}
	})
}

// The bytes on the wire are those of the control protocol's first
// version (the seeds under testdata were captured from it).
func TestControlWireBytes(t *testing.T) {
	for _, c := range []struct {
		m    Message
		want string
	}{
		{Hello{Version: 1, Server: "3f2a9c1b0d4e5f60"}, "\x00\x00\x00/{\"t\":\"hello\",\"v\":1,\"server\":\"3f2a9c1b0d4e5f60\"}"},
		{Services{Entries: []Shared{
			{Name: "web", Instance: "a1", Proto: "http", Meta: map[string]string{"path": "/"}, Origin: "3f2a9c1b0d4e5f60", Version: 2},
			{Name: "db", Instance: "b2", Proto: "tcp", Origin: "3f2a9c1b0d4e5f60", Version: 1},
		}}, "\x00\x00\x00\xda{\"t\":\"services\",\"entries\":[{\"name\":\"web\",\"instance\":\"a1\",\"proto\":\"http\",\"meta\":{\"path\":\"/\"},\"origin\":\"3f2a9c1b0d4e5f60\",\"version\":2},{\"name\":\"db\",\"instance\":\"b2\",\"proto\":\"tcp\",\"origin\":\"3f2a9c1b0d4e5f60\",\"version\":1}]}"},
		{Services{}, "\x00\x00\x00\x10{\"t\":\"services\"}"},
		{Bye{}, "\x00\x00\x00\x0b{\"t\":\"bye\"}"},
		{Refused{Reason: "key removed from the allow-list"}, "\x00\x00\x00:{\"t\":\"refused\",\"reason\":\"key removed from the allow-list\"}"},
	} {
		if got := string(c.m.Append(nil)); got != c.want {
			t.Errorf("%#v:\n got %q\nwant %q", c.m, got, c.want)
		}
		m, n, err := ParseMessage([]byte(c.want))
		if err != nil || n != len(c.want) {
			t.Fatalf("ParseMessage(%q) = %d, %v", c.want, n, err)
		}
		if s, ok := c.m.(Services); ok && s.Entries == nil {
			continue // an empty set decodes the same, as nil
		}
		if !reflect.DeepEqual(m, c.m) {
			t.Errorf("decoded %#v, want %#v", m, c.m)
		}
	}
}

// Every truncated prefix of a valid frame fails with io.ErrUnexpectedEOF,
// whether parsed or read from a stream.
func TestControlMsgTruncated(t *testing.T) {
	for _, m := range sampleMessages {
		b := m.Append(nil)
		for i := range len(b) {
			if _, _, err := ParseMessage(b[:i]); err != io.ErrUnexpectedEOF {
				t.Fatalf("%T: prefix of %d bytes: %v, want io.ErrUnexpectedEOF", m, i, err)
			}
			if _, err := readFrame(bytes.NewReader(b[:i]), nil); err == nil {
				t.Fatalf("%T: prefix of %d bytes read as a frame", m, i)
			}
		}
		if _, n, err := ParseMessage(append(b, 0xFF)); err != nil || n != len(b) {
			t.Fatalf("%T with a byte after it: %d, %v", m, n, err)
		}
	}
}

func TestControlMsgRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not an object":     `[1]`,
		"no type":           `{"v":1}`,
		"hello, version 0":  `{"t":"hello","v":0,"server":"a"}`,
		"hello, bad server": `{"t":"hello","v":1,"server":"a b"}`,
		"bad instance":      `{"t":"services","entries":[{"name":"web","instance":"a b","proto":"tcp","origin":"x","version":1}]}`,
		"bad name":          `{"t":"services","entries":[{"name":"","instance":"a","proto":"tcp","version":1}]}`,
		"bad proto":         `{"t":"services","entries":[{"name":"w","instance":"a","proto":"TCP","version":1}]}`,
		"bad origin":        `{"t":"services","entries":[{"name":"w","instance":"a","origin":"!","version":1}]}`,
		"refused, control":  `{"t":"refused","reason":"a\u001b[2Jb"}`,
		"refused, long":     `{"t":"refused","reason":"` + strings.Repeat("x", MaxReasonBytes+1) + `"}`,
		"refused, number":   `{"t":"refused","reason":1}`,
	} {
		b := append([]byte{0, 0, 0, byte(len(body))}, body...)
		if _, _, err := ParseMessage(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", name, err)
		}
	}
	if _, _, err := ParseMessage([]byte("\x7f\xff\xff\xff{")); !errors.Is(err, ErrBadMessage) {
		t.Errorf("huge length: %v, want ErrBadMessage before the body", err)
	}
}
