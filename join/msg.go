package join

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/hydra-net/hydra/registry"
)

// The codec of SYNC bodies (PROTOCOL.md, "Join (server sync)"): one type
// per message, ParseMsg to decode, Append to encode. No I/O.

// MsgType is a message's "t".
type MsgType string

// Message types.
const (
	TypeHello  MsgType = "hello"  // who I am, what I have (digest): the link starts
	TypeReady  MsgType = "ready"  // my initial state follows no more: you are synced
	TypeTick   MsgType = "tick"   // every interval: what I have and who is alive
	TypeSnap   MsgType = "snap"   // one origin's whole state (in parts)
	TypeDelta  MsgType = "delta"  // changes, in each origin's order
	TypeWant   MsgType = "want"   // send me these origins' snapshots
	TypeReset  MsgType = "reset"  // I do not know this link: say hello again
	TypeRefuse MsgType = "refuse" // I will not link with you (same server id ...)
)

// Op is what a Change does.
type Op string

// Change operations.
const (
	OpSet        Op = "set"        // the entry is new or changed: Entry
	OpDeregister Op = "deregister" // its owner removed it: Instance
	OpExpire     Op = "expire"     // its TTL ran out at its origin: Instance
	OpLeave      Op = "leave"      // the origin shuts down: all its entries go
)

// Version is the version of the link protocol a hello announces.
const Version = 1

// ErrMsg wraps every error ParseMsg returns.
var ErrMsg = errors.New("join: bad link message")

// Msg is one decoded SYNC body.
type Msg interface {
	Type() MsgType
	// Append appends the message's JSON, as ParseMsg reads it.
	Append(dst []byte) []byte
}

// Hello starts a link.
type Hello struct {
	V        int64
	Server   string  // the sender's server id
	Boot     string  // the sender's boot id
	Max      int64   // the largest message the sender accepts
	Interval float64 // the sender's tick, seconds
	Digest   Digest
}

// Ready says the sender's initial state is all sent.
type Ready struct{}

// Tick carries the sender's digest, every interval.
type Tick struct{ Digest Digest }

// Snap is one part of one origin's whole state. Sig is the origin's
// signature of the part (origin, seq, part, more, entries: SignSnap), so
// relays pass parts on as the origin made them; BeatSig signs Beat
// (SignBeat). Age is the sender's own: it is not signed.
type Snap struct {
	Origin         string
	Seq, Beat, Age uint64 // Age: ms since the origin's beat was heard
	Part           int64
	More           bool // more parts follow
	Entries        []json.RawMessage
	Sig, BeatSig   []byte
}

// Delta carries changes, each origin's in order.
type Delta struct{ Changes []Change }

// Want asks for these origins' snapshots.
type Want struct{ Origins []string }

// Reset says the sender holds no link for this peer: say hello again.
type Reset struct{ Error string }

// Refuse says the sender will not link with this peer.
type Refuse struct{ Error string }

// Unknown is a message of a type this version does not know (ignored, as
// the protocol says).
type Unknown struct{ T MsgType }

func (Hello) Type() MsgType     { return TypeHello }
func (Ready) Type() MsgType     { return TypeReady }
func (Tick) Type() MsgType      { return TypeTick }
func (Snap) Type() MsgType      { return TypeSnap }
func (Delta) Type() MsgType     { return TypeDelta }
func (Want) Type() MsgType      { return TypeWant }
func (Reset) Type() MsgType     { return TypeReset }
func (Refuse) Type() MsgType    { return TypeRefuse }
func (u Unknown) Type() MsgType { return u.T }

// DigestItem is what a server knows of one origin: the last change it
// applied (Seq), the origin's last heartbeat (Beat) and how long ago, in
// milliseconds, that heartbeat was heard (Age), and the origin's signature
// of Beat (Sig, SignBeat; none when nothing is signed). On the wire:
// [seq,beat,age] or [seq,beat,age,"sig"] (standard base64).
type DigestItem struct {
	Seq, Beat, Age uint64
	Sig            []byte
}

// Digest maps origin ids to what the sender knows of them.
type Digest map[string]DigestItem

// Change is one change of one origin's entries. Seq is the origin's
// counter after the change and Prev before it: a server applies a change
// only on top of Prev, so that every origin's changes apply in order, once.
// Sig is the origin's signature of the rest (SignChange): relays pass the
// change on byte for byte (Entry as received).
type Change struct {
	Origin   string          `json:"origin"`
	Seq      uint64          `json:"seq"`
	Prev     uint64          `json:"prev"`
	Op       Op              `json:"op"`
	Entry    json.RawMessage `json:"entry,omitempty"`    // set
	Instance string          `json:"instance,omitempty"` // deregister, expire
	Sig      []byte          `json:"sig,omitempty"`
}

// wireMsg is every type's fields, for decoding only.
type wireMsg struct {
	T        MsgType               `json:"t"`
	V        int64                 `json:"v"`
	Server   string                `json:"server"`
	Boot     string                `json:"boot"`
	Max      int64                 `json:"max"`
	Interval float64               `json:"interval"`
	Digest   map[string]DigestItem `json:"digest"`
	Origin   string                `json:"origin"`
	Seq      uint64                `json:"seq"`
	Beat     uint64                `json:"beat"`
	Age      uint64                `json:"age"`
	Part     int64                 `json:"part"`
	More     bool                  `json:"more"`
	Entries  []json.RawMessage     `json:"entries"`
	Changes  []Change              `json:"changes"`
	Origins  []string              `json:"origins"`
	Error    string                `json:"error"`
	Sig      []byte                `json:"sig"`
	BeatSig  []byte                `json:"bsig"`
}

// ParseMsg decodes a SYNC body; n is the bytes consumed (all of b). A
// truncated body fails with an error that is io.ErrUnexpectedEOF (and
// ErrMsg). It checks the JSON shape only; what the fields mean is checked
// where they are used.
func ParseMsg(b []byte) (m Msg, n int, err error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, 0, fmt.Errorf("%w: empty: %w", ErrMsg, io.ErrUnexpectedEOF)
	}
	if t[0] != '{' {
		return nil, 0, fmt.Errorf("%w: not a JSON object: %s", ErrMsg, quote(string(t)))
	}
	var w wireMsg
	if err := json.Unmarshal(t, &w); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) && se.Offset >= int64(len(t)) {
			return nil, 0, fmt.Errorf("%w: %w", ErrMsg, io.ErrUnexpectedEOF)
		}
		return nil, 0, fmt.Errorf("%w: %v", ErrMsg, err)
	}
	switch w.T {
	case "":
		return nil, 0, fmt.Errorf("%w: no type (\"t\")", ErrMsg)
	case TypeHello:
		m = Hello{V: w.V, Server: w.Server, Boot: w.Boot, Max: w.Max, Interval: w.Interval, Digest: w.Digest}
	case TypeReady:
		m = Ready{}
	case TypeTick:
		m = Tick{Digest: w.Digest}
	case TypeSnap:
		m = Snap{Origin: w.Origin, Seq: w.Seq, Beat: w.Beat, Age: w.Age, Part: w.Part, More: w.More, Entries: w.Entries,
			Sig: w.Sig, BeatSig: w.BeatSig}
	case TypeDelta:
		for i, c := range w.Changes {
			if c.Op == OpSet && len(c.Entry) == 0 {
				return nil, 0, fmt.Errorf("%w: change %d: set without entry", ErrMsg, i)
			}
		}
		m = Delta{Changes: w.Changes}
	case TypeWant:
		m = Want{Origins: w.Origins}
	case TypeReset:
		m = Reset{Error: w.Error}
	case TypeRefuse:
		m = Refuse{Error: w.Error}
	default:
		m = Unknown{T: w.T}
	}
	return m, len(b), nil
}

func openMsg(b []byte, t MsgType) []byte {
	b = append(b, `{"t":`...)
	return appendJSONString(b, string(t))
}

// Append encodes the hello (fields left zero are left out).
func (m Hello) Append(b []byte) []byte {
	b = openMsg(b, TypeHello)
	if m.V != 0 {
		b = appendIntField(b, "v", m.V)
	}
	b = appendStringField(b, "server", m.Server)
	b = appendStringField(b, "boot", m.Boot)
	if m.Max != 0 {
		b = appendIntField(b, "max", m.Max)
	}
	if m.Interval != 0 {
		b = append(b, `,"interval":`...)
		b = strconv.AppendFloat(b, m.Interval, 'g', -1, 64)
	}
	b = m.Digest.appendField(b)
	return append(b, '}')
}

// Append encodes ready.
func (Ready) Append(b []byte) []byte { return append(b, `{"t":"ready"}`...) }

// Append encodes the tick.
func (m Tick) Append(b []byte) []byte {
	return append(m.Digest.appendField(openMsg(b, TypeTick)), '}')
}

// Append encodes the snapshot part.
func (m Snap) Append(b []byte) []byte {
	b = openMsg(b, TypeSnap)
	b = appendStringField(b, "origin", m.Origin)
	b = appendUintField(b, "seq", m.Seq)
	b = appendUintField(b, "beat", m.Beat)
	b = appendUintField(b, "age", m.Age)
	if m.Part != 0 {
		b = appendIntField(b, "part", m.Part)
	}
	if len(m.Entries) > 0 {
		b = append(b, `,"entries":[`...)
		for i, e := range m.Entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, e...)
		}
		b = append(b, ']')
	}
	if m.More {
		b = append(b, `,"more":true`...)
	}
	b = appendBytesField(b, "sig", m.Sig)
	b = appendBytesField(b, "bsig", m.BeatSig)
	return append(b, '}')
}

// Append encodes the delta.
func (m Delta) Append(b []byte) []byte {
	b = openMsg(b, TypeDelta)
	if len(m.Changes) > 0 {
		b = append(b, `,"changes":[`...)
		for i := range m.Changes {
			if i > 0 {
				b = append(b, ',')
			}
			b = m.Changes[i].Append(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// Append encodes the want.
func (m Want) Append(b []byte) []byte {
	b = openMsg(b, TypeWant)
	if len(m.Origins) > 0 {
		b = append(b, `,"origins":[`...)
		for i, o := range m.Origins {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, o)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// Append encodes the reset.
func (m Reset) Append(b []byte) []byte {
	return append(appendStringField(openMsg(b, TypeReset), "error", m.Error), '}')
}

// Append encodes the refusal.
func (m Refuse) Append(b []byte) []byte {
	return append(appendStringField(openMsg(b, TypeRefuse), "error", m.Error), '}')
}

// Append encodes the unknown message's type (all that was kept of it).
func (u Unknown) Append(b []byte) []byte { return append(openMsg(b, u.T), '}') }

// Append encodes one change, as a delta's "changes" holds it.
func (c *Change) Append(b []byte) []byte {
	b = append(b, `{"origin":`...)
	b = appendJSONString(b, c.Origin)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"prev":`...)
	b = strconv.AppendUint(b, c.Prev, 10)
	b = append(b, `,"op":`...)
	b = appendJSONString(b, string(c.Op))
	if len(c.Entry) > 0 {
		b = append(b, `,"entry":`...)
		b = append(b, c.Entry...)
	}
	b = appendStringField(b, "instance", c.Instance)
	b = appendBytesField(b, "sig", c.Sig)
	return append(b, '}')
}

// appendField appends `,"digest":{...}` unless d is empty.
func (d Digest) appendField(b []byte) []byte {
	if len(d) == 0 {
		return b
	}
	b = append(b, `,"digest":{`...)
	first := true
	for o, it := range d {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, o)
		b = append(b, ':')
		b = it.Append(b)
	}
	return append(b, '}')
}

// MarshalJSON encodes d as [seq,beat,age].
func (d DigestItem) MarshalJSON() ([]byte, error) { return d.Append(nil), nil }

// Append appends [seq,beat,age] or [seq,beat,age,"sig"].
func (d DigestItem) Append(b []byte) []byte {
	b = append(b, '[')
	b = strconv.AppendUint(b, d.Seq, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, d.Beat, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, d.Age, 10)
	if len(d.Sig) > 0 {
		b = append(b, ',', '"')
		b = base64.StdEncoding.AppendEncode(b, d.Sig)
		b = append(b, '"')
	}
	return append(b, ']')
}

// UnmarshalJSON decodes [seq,beat,age] or [seq,beat,age,"sig"]: a digest
// has one per origin and arrives every interval on every link, so the
// plain form is read by hand; anything else goes through encoding/json.
func (d *DigestItem) UnmarshalJSON(b []byte) error {
	if it, ok := parseDigestItem(b); ok {
		*d = it
		return nil
	}
	return d.unmarshalSlow(b)
}

// parseDigestItem reads [n,n,n] or [n,n,n,"base64"] (no escapes, no
// spaces); false for anything else.
func parseDigestItem(b []byte) (DigestItem, bool) {
	var n [3]uint64
	if len(b) < 7 || b[0] != '[' || b[len(b)-1] != ']' {
		return DigestItem{}, false
	}
	i := 1
	for k := range n {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v := n[k]*10 + uint64(b[i]-'0')
			if n[k] > (1<<64-1)/10 || v < n[k]*10 {
				return DigestItem{}, false // overflow: the slow path says so
			}
			n[k] = v
			i++
		}
		if i == start || i-start > 1 && b[start] == '0' || i >= len(b) {
			return DigestItem{}, false
		}
		if k < 2 {
			if b[i] != ',' {
				return DigestItem{}, false
			}
			i++
		}
	}
	it := DigestItem{Seq: n[0], Beat: n[1], Age: n[2]}
	switch {
	case i == len(b)-1:
		return it, true
	case b[i] != ',' || i+4 > len(b) || b[i+1] != '"' || b[len(b)-2] != '"':
		return DigestItem{}, false
	}
	enc := b[i+2 : len(b)-2]
	if bytes.IndexByte(enc, '\\') >= 0 || bytes.IndexByte(enc, '"') >= 0 {
		return DigestItem{}, false
	}
	sig, err := base64.StdEncoding.AppendDecode(nil, enc)
	if err != nil {
		return DigestItem{}, false
	}
	it.Sig = sig
	return it, true
}

func (d *DigestItem) unmarshalSlow(b []byte) error {
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if len(a) != 3 && len(a) != 4 {
		return fmt.Errorf("digest item has %d elements: want [seq, beat, age] or [seq, beat, age, sig]", len(a))
	}
	var n [3]uint64
	for i := range n {
		if err := json.Unmarshal(a[i], &n[i]); err != nil {
			return fmt.Errorf("digest item: element %d: %w", i, err)
		}
	}
	*d = DigestItem{Seq: n[0], Beat: n[1], Age: n[2]}
	if len(a) == 4 {
		if err := json.Unmarshal(a[3], &d.Sig); err != nil {
			return fmt.Errorf("digest item: sig: %w", err)
		}
	}
	return nil
}

// appendBytesField appends `,"name":"base64"` unless v is empty.
func appendBytesField(b []byte, name string, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

func appendStringField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

func appendUintField(b []byte, name string, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}

func appendIntField(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendJSONString appends s as a JSON string: ids and the like as they
// are, anything else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// checkID reports whether s is a valid server or origin id (as registry
// checks ids): 1 to registry.MaxIDLen bytes of [A-Za-z0-9._-].
func checkID(s string) bool {
	if s == "" || len(s) > registry.MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return false
		}
	}
	return true
}

// quote quotes s for an error message, shortened to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
