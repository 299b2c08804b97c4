package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// VerbSync is the first frame of every message on a join link (both
// directions); VerbJoin asks a server to join another at run time.
const (
	VerbSync = "SYNC"
	VerbJoin = "JOIN"
)

// Link message types: linkMsg.T (PROTOCOL.md, "Join (server sync)").
const (
	msgHello  = "hello"  // who I am, what I have (digest): the link starts
	msgReady  = "ready"  // my initial state follows no more: you are synced
	msgTick   = "tick"   // every interval: what I have and who is alive
	msgSnap   = "snap"   // one origin's whole state (in parts)
	msgDelta  = "delta"  // changes, in each origin's order
	msgWant   = "want"   // send me these origins' snapshots
	msgReset  = "reset"  // I do not know this link: say hello again
	msgRefuse = "refuse" // I will not link with you (same server id ...)
)

// Change operations.
const (
	opSet        = "set"        // the entry is new or changed: Entry
	opDeregister = "deregister" // its owner removed it: Instance
	opExpire     = "expire"     // its TTL ran out at its origin: Instance
)

// linkVersion is the version of the link protocol a hello announces.
const linkVersion = 1

// linkMsg is the body of one SYNC message, every type's fields together.
type linkMsg struct {
	T        string                `json:"t"`
	V        int64                 `json:"v,omitempty"`
	Server   string                `json:"server,omitempty"`
	Boot     string                `json:"boot,omitempty"`
	Max      int64                 `json:"max,omitempty"`      // hello: the largest message the sender accepts
	Interval float64               `json:"interval,omitempty"` // hello: the sender's tick, seconds
	Digest   map[string]digestItem `json:"digest,omitempty"`   // hello, tick
	Origin   string                `json:"origin,omitempty"`   // snap
	Seq      uint64                `json:"seq,omitempty"`      // snap
	Beat     uint64                `json:"beat,omitempty"`     // snap
	Age      uint64                `json:"age,omitempty"`      // snap: ms since the origin's beat was heard
	Part     int64                 `json:"part,omitempty"`     // snap
	More     bool                  `json:"more,omitempty"`     // snap: more parts follow
	Entries  []json.RawMessage     `json:"entries,omitempty"`  // snap
	Changes  []change              `json:"changes,omitempty"`  // delta
	Origins  []string              `json:"origins,omitempty"`  // want
	Error    string                `json:"error,omitempty"`    // reset, refuse
}

// digestItem is what a server knows of one origin: the last change it
// applied (seq), the origin's last heartbeat (beat) and how long ago, in
// milliseconds, that heartbeat was heard (age). On the wire: [seq,beat,age].
type digestItem struct {
	Seq, Beat, Age uint64
}

func (d digestItem) MarshalJSON() ([]byte, error) { return d.append(nil), nil }

func (d digestItem) append(b []byte) []byte {
	b = append(b, '[')
	b = strconv.AppendUint(b, d.Seq, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, d.Beat, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, d.Age, 10)
	return append(b, ']')
}

func (d *digestItem) UnmarshalJSON(b []byte) error {
	var a []uint64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if len(a) != 3 {
		return fmt.Errorf("digest item has %d numbers: want [seq, beat, age]", len(a))
	}
	*d = digestItem{a[0], a[1], a[2]}
	return nil
}

// change is one change of one origin's entries. Seq is the origin's
// counter after the change and Prev before it: a server applies a change
// only on top of Prev, so that every origin's changes apply in order, once.
type change struct {
	Origin   string          `json:"origin"`
	Seq      uint64          `json:"seq"`
	Prev     uint64          `json:"prev"`
	Op       string          `json:"op"`
	Entry    json.RawMessage `json:"entry,omitempty"`    // set
	Instance string          `json:"instance,omitempty"` // deregister, expire
}

// errLinkMsg wraps every error parseLinkMsg returns.
var errLinkMsg = errors.New("registry: bad join message")

// parseLinkMsg decodes a SYNC body. It checks the JSON shape only; what
// the fields mean is checked where they are used.
func parseLinkMsg(b []byte) (*linkMsg, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object: %s", errLinkMsg, quote(string(b)))
	}
	m := &linkMsg{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %v", errLinkMsg, err)
	}
	if m.T == "" {
		return nil, fmt.Errorf("%w: no type (\"t\")", errLinkMsg)
	}
	for i, c := range m.Changes {
		if c.Op == opSet && len(c.Entry) == 0 {
			return nil, fmt.Errorf("%w: change %d: set without entry", errLinkMsg, i)
		}
	}
	return m, nil
}

// appendLinkMsg encodes m (every non-zero field) as parseLinkMsg reads it.
// The hot paths build their messages piecewise with the same helpers.
func appendLinkMsg(b []byte, m *linkMsg) []byte {
	b = append(b, `{"t":`...)
	b = appendJSONString(b, m.T)
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
	if len(m.Digest) > 0 {
		b = append(b, `,"digest":{`...)
		first := true
		for o, d := range m.Digest {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, o)
			b = append(b, ':')
			b = d.append(b)
		}
		b = append(b, '}')
	}
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
	if len(m.Changes) > 0 {
		b = append(b, `,"changes":[`...)
		for i := range m.Changes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendChange(b, &m.Changes[i])
		}
		b = append(b, ']')
	}
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
	b = appendStringField(b, "error", m.Error)
	return append(b, '}')
}

func appendChange(b []byte, c *change) []byte {
	b = append(b, `{"origin":`...)
	b = appendJSONString(b, c.Origin)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"prev":`...)
	b = strconv.AppendUint(b, c.Prev, 10)
	b = append(b, `,"op":`...)
	b = appendJSONString(b, c.Op)
	if len(c.Entry) > 0 {
		b = append(b, `,"entry":`...)
		b = append(b, c.Entry...)
	}
	b = appendStringField(b, "instance", c.Instance)
	return append(b, '}')
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
