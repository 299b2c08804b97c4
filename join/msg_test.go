package join

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// wireCases are messages and their exact bytes on the wire (PROTOCOL.md,
// "Join (server sync)"): what servers of every version send and read.
var wireCases = []struct {
	m    Msg
	wire string
}{
	{Hello{V: 1, Server: "a", Boot: "b", Max: 65536, Interval: 0.25, Digest: Digest{"a": {Seq: 1, Beat: 2}}},
		`{"t":"hello","v":1,"server":"a","boot":"b","max":65536,"interval":0.25,"digest":{"a":[1,2,0]}}`},
	{Ready{}, `{"t":"ready"}`},
	{Tick{Digest: Digest{"o-1": {Seq: 10, Beat: 20, Age: 30}}}, `{"t":"tick","digest":{"o-1":[10,20,30]}}`},
	{Tick{Digest: Digest{"o-1": {Seq: 10, Beat: 20, Age: 30, Sig: []byte{1, 2, 3}}}}, `{"t":"tick","digest":{"o-1":[10,20,30,"AQID"]}}`},
	{Snap{Origin: "O", Seq: 5, Beat: 1, Sig: []byte{1}, BeatSig: []byte{2}}, `{"t":"snap","origin":"O","seq":5,"beat":1,"sig":"AQ==","bsig":"Ag=="}`},
	{Delta{Changes: []Change{{Origin: "O", Seq: 2, Prev: 1, Op: OpLeave, Sig: []byte{3}}}}, `{"t":"delta","changes":[{"origin":"O","seq":2,"prev":1,"op":"leave","sig":"Aw=="}]}`},
	{Snap{Origin: "O", Seq: 5, Beat: 1, Age: 2, Part: 1, More: true, Entries: []json.RawMessage{json.RawMessage(`{"name":"n"}`)}},
		`{"t":"snap","origin":"O","seq":5,"beat":1,"age":2,"part":1,"entries":[{"name":"n"}],"more":true}`},
	{Snap{Origin: "O", Seq: 5, Beat: 1}, `{"t":"snap","origin":"O","seq":5,"beat":1}`},
	{Delta{Changes: []Change{
		{Origin: "O", Seq: 2, Prev: 1, Op: OpSet, Entry: json.RawMessage(`{"name":"n"}`)},
		{Origin: "O", Seq: 3, Prev: 2, Op: OpExpire, Instance: "i"},
	}}, `{"t":"delta","changes":[{"origin":"O","seq":2,"prev":1,"op":"set","entry":{"name":"n"}},{"origin":"O","seq":3,"prev":2,"op":"expire","instance":"i"}]}`},
	{Want{Origins: []string{"a", "b c"}}, `{"t":"want","origins":["a","b c"]}`},
	{Reset{Error: "no such link: say hello"}, `{"t":"reset","error":"no such link: say hello"}`},
	{Refuse{Error: "too many links"}, `{"t":"refuse","error":"too many links"}`},
}

func TestMsgWireBytes(t *testing.T) {
	for _, tc := range wireCases {
		if got := string(tc.m.Append(nil)); got != tc.wire {
			t.Errorf("%T.Append:\n got %s\nwant %s", tc.m, got, tc.wire)
		}
		m, n, err := ParseMsg([]byte(tc.wire))
		if err != nil || n != len(tc.wire) || !reflect.DeepEqual(normalize(m), normalize(tc.m)) {
			t.Errorf("ParseMsg(%s) = %#v, %d, %v; want %#v", tc.wire, m, n, err, tc.m)
		}
		if m.Type() != tc.m.Type() {
			t.Errorf("%s: type %q", tc.wire, m.Type())
		}
	}
}

// TestMsgTruncated: every truncated prefix of a valid message fails, with
// io.ErrUnexpectedEOF.
func TestMsgTruncated(t *testing.T) {
	for _, tc := range wireCases {
		for i := range len(tc.wire) {
			_, _, err := ParseMsg([]byte(tc.wire[:i]))
			if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrMsg) {
				t.Errorf("ParseMsg(%q): %v, want io.ErrUnexpectedEOF", tc.wire[:i], err)
			}
		}
	}
}

func TestMsgBad(t *testing.T) {
	for _, b := range []string{`[1,2]`, `{}`, `{"t":""}`, `{"t":"delta","changes":[{"origin":"O","op":"set"}]}`,
		`{"t":"tick","digest":{"a":[1,2]}}`, `{"t":1}`, `nope`} {
		if _, _, err := ParseMsg([]byte(b)); err == nil || !errors.Is(err, ErrMsg) || errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ParseMsg(%s): %v", b, err)
		}
	}
	m, _, err := ParseMsg([]byte(`{"t":"frob","x":1}`))
	if err != nil || m.Type() != "frob" {
		t.Errorf("unknown type: %#v %v", m, err)
	}
}

func TestLinkStateString(t *testing.T) {
	for s, want := range map[LinkState]string{StateHello: "hello", StateRehello: "rehello", StateSyncing: "syncing",
		StateSynced: "synced", StateDown: "down", 9: "LinkState(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
}
