package registry

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ProtocolVersion is the version of the registry protocol this package
// speaks (PROTOCOL.md). A request may carry "v"; any other value than this
// gets a bad_version error.
const ProtocolVersion = 1

// Verbs: the first frame of a request.
const (
	VerbPing       = "PING"
	VerbInfo       = "INFO"
	VerbRegister   = "REGISTER"
	VerbUpdate     = "UPDATE"
	VerbHeartbeat  = "HEARTBEAT"
	VerbDeregister = "DEREGISTER"
	VerbLookup     = "LOOKUP"
	VerbList       = "LIST"
	VerbWatch      = "WATCH"
	VerbUnwatch    = "UNWATCH"
	// VerbJoin asks a server to join another at run time; its Replicator
	// (package join) answers it.
	VerbJoin = "JOIN"
	// VerbLeave asks a server to stop dialling a server it joined (a
	// Replicator with a Leave method answers it: package join).
	VerbLeave = "LEAVE"
	// VerbSync is the first frame of every message on a join link, both
	// directions: link traffic for the Replicator, not a request.
	VerbSync = "SYNC"
)

var verbs = []string{VerbPing, VerbInfo, VerbRegister, VerbUpdate, VerbHeartbeat, VerbDeregister,
	VerbLookup, VerbList, VerbWatch, VerbUnwatch, VerbJoin, VerbLeave}

var syncFrame = []byte(VerbSync)

// Status frames: the first frame of a reply or event.
const (
	StatusOK    = "OK"
	StatusError = "ERR"
	StatusEvent = "EVENT"
)

// EventType says what happened to an entry.
type EventType string

// Event types. Sync is made by the Go client, never sent by the server; the
// server's keepalive events are not passed on.
const (
	EventRegister   EventType = "register"   // a new entry
	EventUpdate     EventType = "update"     // an entry changed (its version grew)
	EventDeregister EventType = "deregister" // its owner removed it
	EventExpire     EventType = "expire"     // its heartbeats stopped for its TTL
	EventKeepalive  EventType = "keepalive"  // nothing happened for a while
	EventClosing    EventType = "closing"    // the server is shutting down: this watch ends with it
	EventSync       EventType = "sync"       // (client) the full current state: Entries
)

// request is every field any verb takes; each verb reads its own.
type request struct {
	V        *int64             `json:"v"`
	ID       json.RawMessage    `json:"id"`
	Name     *string            `json:"name"`
	Host     *string            `json:"host"`
	Port     *int64             `json:"port"`
	Proto    *string            `json:"proto"`
	Meta     *map[string]string `json:"meta"`
	TTL      *float64           `json:"ttl"`
	Token    string             `json:"token"`
	Instance string             `json:"instance"`
	Version  uint64             `json:"version"`
	Entries  bool               `json:"entries"`
	After    string             `json:"after"`
	Limit    int                `json:"limit"`
	Watch    string             `json:"watch"`
}

// splitEnvelope splits a message a ROUTER received into the envelope (the
// routing id, and any frames up to and including an empty delimiter frame
// that is not the last frame) and the request frames. REQ sockets, and
// DEALERs that imitate them, send the delimiter; bare DEALERs do not.
// Replies carry the same envelope back.
func splitEnvelope(msg [][]byte) (env, req [][]byte) {
	for i := 1; i < len(msg)-1; i++ {
		if len(msg[i]) == 0 {
			return msg[:i+1], msg[i+1:]
		}
	}
	return msg[:1], msg[1:]
}

// parseRequest checks the request frames and decodes the body. The verb is
// returned in upper case.
func parseRequest(frames [][]byte, r *request) (verb string, err *Error) {
	switch {
	case len(frames) == 0:
		return "", badRequest("empty request: want 1 or 2 frames (verb, JSON body)")
	case len(frames) > 2:
		return "", badRequest("request has %d frames: want 1 or 2 (verb, JSON body)", len(frames))
	}
	v := frames[0]
	if len(v) == 0 || len(v) > 32 {
		return "", badRequest("verb frame is %d bytes: want a verb such as LOOKUP", len(v))
	}
	verb = strings.ToUpper(string(v))
	known := false
	for _, k := range verbs {
		if verb == k {
			known = true
			break
		}
	}
	if len(frames) == 2 {
		body := frames[1]
		if len(bytes.TrimSpace(body)) > 0 {
			if err := decodeBody(body, r); err != nil {
				return verb, err
			}
		}
	}
	if r.V != nil && *r.V != ProtocolVersion {
		return verb, &Error{Code: CodeBadVersion, Message: fmt.Sprintf("protocol version %d not supported: this server speaks %d", *r.V, ProtocolVersion)}
	}
	if !known {
		return "", &Error{Code: CodeUnknownVerb, Message: fmt.Sprintf("unknown verb %s: want one of %s", quote(string(v)), strings.Join(verbs, ", "))}
	}
	return verb, nil
}

func decodeBody(body []byte, r *request) *Error {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return badRequest("body is not a JSON object: %s", quote(string(b)))
	}
	var err error
	if !decodeFlat(b, r) { // fast path for simple bodies (fastjson.go)
		err = json.Unmarshal(b, r)
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field == "v":
			return &Error{Code: CodeBadVersion, Message: fmt.Sprintf("protocol version given as JSON %s: want the integer %d", te.Value, ProtocolVersion)}
		case errors.As(err, &te):
			return badRequest("body: field %q: want %s, got JSON %s", te.Field, jsonKind(te.Type.String()), te.Value)
		case errors.As(err, &se):
			return badRequest("body is not valid JSON (at byte %d): %v", se.Offset, se)
		}
		return badRequest("body: %v", err)
	}
	if r.ID != nil && !validID(r.ID) {
		r.ID = nil
		return badRequest("id must be a number or a string of at most %d bytes", maxRequestIDLen)
	}
	// `""` anywhere in the body: one of the fields whose empty value would
	// otherwise read as absent may have been sent empty (PROTOCOL.md 2.4).
	if bytes.Contains(b, []byte(`""`)) {
		if f := emptyField(b); f != "" {
			return badRequest("%s is empty: leave it out, or give a value", f)
		}
	}
	return nil
}

// validID reports whether a request's raw JSON "id" is a number of at most
// maxRequestIDLen characters or a string of at most maxRequestIDLen bytes
// (counted after unescaping, without its quotes).
func validID(id json.RawMessage) bool {
	switch {
	case len(id) == 0:
		return false
	case id[0] == '"':
		var s string
		return json.Unmarshal(id, &s) == nil && len(s) <= maxRequestIDLen
	case id[0] == '-' || id[0] >= '0' && id[0] <= '9':
		return len(id) <= maxRequestIDLen
	}
	return false
}

// emptyField returns the name of the first of token, instance and watch that
// body gives as "", or "". An empty token would otherwise get a new token
// minted silently, an empty instance a new instance id.
func emptyField(body []byte) string {
	var f struct {
		Token    *string `json:"token"`
		Instance *string `json:"instance"`
		Watch    *string `json:"watch"`
	}
	if json.Unmarshal(body, &f) != nil {
		return ""
	}
	switch {
	case f.Token != nil && *f.Token == "":
		return "token"
	case f.Instance != nil && *f.Instance == "":
		return "instance"
	case f.Watch != nil && *f.Watch == "":
		return "watch"
	}
	return ""
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "map"):
		return "an object of strings"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "true or false"
	}
	return goType
}

// appendBody appends a reply body: v's JSON object with "id" spliced in
// first when the request had one. raw, if not nil, is used instead of
// marshalling v.
func appendBody(dst []byte, id json.RawMessage, v any) []byte {
	var obj []byte
	switch x := v.(type) {
	case []byte:
		obj = x
	default:
		var err error
		if obj, err = json.Marshal(v); err != nil {
			obj = []byte(`{}`)
		}
	}
	if len(id) == 0 {
		return append(dst, obj...)
	}
	dst = append(dst, `{"id":`...)
	dst = append(dst, id...)
	if len(obj) > 2 {
		dst = append(dst, ',')
	}
	return append(dst, obj[1:]...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
