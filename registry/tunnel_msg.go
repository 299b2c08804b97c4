package registry

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The tunnel control stream (PROTOCOL.md, "Tunnels"): a mux stream whose
// header names tunnelControlTarget, carrying frames both ways, each a
// 4-byte big-endian length and a JSON object:
//
//	{"t":"hello","v":1,"server":"<server id>"}         first, from each side
//	{"t":"services","entries":[{...}, ...]}            the sender's whole shared set
//
// A side sends "services" after its hello and again whenever its set
// changes (debounced); each replaces the previous one. The join protocol's
// messages (package join, msg.go) carry per-origin sequence numbers, digests and
// beats for a mesh of servers; a tunnel links exactly two servers over one
// session whose liveness mux already judges, so a whole-set message is all
// it needs. Unknown types are ignored, for later versions.

// tunnelControlTarget is the stream header target reserved for the control
// stream; proxied streams name "svc:" + instance, so nothing collides.
const (
	tunnelControlTarget = "hydra.ctl"
	tunnelTargetPrefix  = "svc:"
	tunnelVersion       = 1
	tunnelMsgHello      = "hello"
	tunnelMsgServices   = "services"
)

// maxTunnelMsg bounds one control frame.
const maxTunnelMsg = 4 << 20

var errTunnelMsg = errors.New("registry: bad tunnel control message")

// tunnelMsg is one control message, every type's fields together.
type tunnelMsg struct {
	T       string        `json:"t"`
	V       int           `json:"v,omitempty"`
	Server  string        `json:"server,omitempty"`
	Entries []tunnelEntry `json:"entries,omitempty"`
}

// tunnelEntry is a shared service as the far side sees it: no host or
// port (the far side reaches it through the tunnel, by Instance).
type tunnelEntry struct {
	Name     string            `json:"name"`
	Instance string            `json:"instance"`
	Proto    string            `json:"proto"`
	Meta     map[string]string `json:"meta,omitempty"`
	Origin   string            `json:"origin"`
	Version  uint64            `json:"version"`
}

// parseTunnelMsg decodes a control frame's body and checks its shape and
// every entry's fields (as a registration's are checked).
func parseTunnelMsg(b []byte, maxMeta int) (*tunnelMsg, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object: %s", errTunnelMsg, quote(string(b[:min(len(b), 64)])))
	}
	m := &tunnelMsg{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %v", errTunnelMsg, err)
	}
	if m.T == "" {
		return nil, fmt.Errorf("%w: no type (\"t\")", errTunnelMsg)
	}
	if m.T == tunnelMsgHello && (m.V < 1 || checkID("server", m.Server) != nil) {
		return nil, fmt.Errorf("%w: hello: version %d, server %s", errTunnelMsg, m.V, quote(m.Server))
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Proto == "" {
			e.Proto = DefaultProto
		}
		for _, err := range []*Error{checkName(e.Name), checkID("instance", e.Instance), checkProto(e.Proto),
			checkMeta(e.Meta, maxMeta)} {
			if err != nil {
				return nil, fmt.Errorf("%w: entry %d: %s", errTunnelMsg, i, err.Message)
			}
		}
		if e.Origin != "" {
			if err := checkID("origin", e.Origin); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %s", errTunnelMsg, i, err.Message)
			}
		}
	}
	return m, nil
}

// appendTunnelFrame appends m as one frame: length, then JSON.
func appendTunnelFrame(dst []byte, m *tunnelMsg) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return dst, err
	}
	if len(body) > maxTunnelMsg {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", errTunnelMsg, len(body), maxTunnelMsg)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...), nil
}

// readTunnelFrame reads one frame's body, checking the length before
// allocating.
func readTunnelFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxTunnelMsg {
		return nil, fmt.Errorf("%w: frame of %d bytes (1 to %d)", errTunnelMsg, n, maxTunnelMsg)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
