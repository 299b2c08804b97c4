package registry

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzTunnelMsg: the control-stream decoder (a frame, then its JSON body)
// never panics, and a message it accepts re-encodes to a frame that
// decodes the same. Each input is also read split in two, as a stream
// delivers it.
func FuzzTunnelMsg(f *testing.F) {
	for _, m := range []*tunnelMsg{
		{T: tunnelMsgHello, V: 1, Server: "a1b2"},
		{T: tunnelMsgServices, Entries: []tunnelEntry{{Name: "web", Instance: "i1", Proto: "http", Meta: map[string]string{"k": "v"}, Origin: "a1b2", Version: 3}}},
		{T: "future"},
	} {
		b, _ := appendTunnelFrame(nil, m)
		f.Add(b)
	}
	f.Add([]byte("\x00\x00\x00\x02{}"))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := readTunnelFrame(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		// The same bytes in two reads.
		half := len(b) / 2
		body2, err := readTunnelFrame(io.MultiReader(bytes.NewReader(b[:half]), bytes.NewReader(b[half:])), nil)
		if err != nil || !bytes.Equal(body, body2) {
			t.Fatalf("split read: %v", err)
		}
		m, err := parseTunnelMsg(body, DefaultMaxMetadataBytes)
		if err != nil {
			if !errors.Is(err, errTunnelMsg) {
				t.Fatalf("error %v does not wrap errTunnelMsg", err)
			}
			return
		}
		enc, err := appendTunnelFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		body3, err := readTunnelFrame(bytes.NewReader(enc), nil)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseTunnelMsg(body3, DefaultMaxMetadataBytes)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n%+v\n%+v", m, m2)
		}
	})
}

// Every truncated prefix of a valid frame fails.
func TestTunnelMsgTruncated(t *testing.T) {
	b, _ := appendTunnelFrame(nil, &tunnelMsg{T: tunnelMsgHello, V: 1, Server: "x"})
	for i := range len(b) {
		if _, err := readTunnelFrame(bytes.NewReader(b[:i]), nil); err == nil {
			t.Fatalf("prefix of %d bytes read as a frame", i)
		}
	}
}
