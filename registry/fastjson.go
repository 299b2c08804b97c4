package registry

import (
	"bytes"
	"math"
)

// decodeFlat is a fast path for decodeBody. Most requests are small flat
// objects such as LOOKUP's {"id":123,"name":"web"} or HEARTBEAT's
// {"token":"...","id":5}, and json.Unmarshal's reflection was a large share
// of the server's allocations and CPU for them.
//
// decodeFlat accepts only a strict subset of JSON: one object whose keys
// are exactly (same case) the names in flatFields, each at most once, with
// plain printable-ASCII strings (no escapes), integers in the field's range
// (no fraction or exponent), true or false, and JSON whitespace between
// tokens. For those it stores exactly what json.Unmarshal would, and it
// returns true. For anything else it returns false without touching r, and
// the caller uses json.Unmarshal.
func decodeFlat(b []byte, r *request) bool {
	var vals [len(flatFields)]flatVal
	n := 0
	var seen uint32
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := scanString(b, i)
			if !ok {
				return false
			}
			f := flatField(key)
			if f < 0 || seen&(1<<f) != 0 {
				return false // unknown (perhaps another case) or repeated key
			}
			seen |= 1 << f
			i = skipSpace(b, j)
			if i == len(b) || b[i] != ':' {
				return false
			}
			i = skipSpace(b, i+1)
			if i, ok = flatValue(b, i, flatFields[f].kind, &vals[n]); !ok {
				return false
			}
			vals[n].field = f
			n++
			i = skipSpace(b, i)
			if i == len(b) {
				return false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != len(b) {
		return false
	}
	for _, v := range vals[:n] {
		v.store(r)
	}
	return true
}

// Kinds of value decodeFlat takes.
const (
	flatRaw    = iota // id: a string or an integer, kept as its JSON text
	flatString        // a string
	flatInt64         // an integer in int64's range
	flatInt           // an integer in int's range
	flatUint64        // a non-negative integer in uint64's range
	flatBool          // true or false
)

var flatFields = [...]struct {
	name string
	kind int
}{
	{"id", flatRaw},
	{"name", flatString},
	{"host", flatString},
	{"proto", flatString},
	{"token", flatString},
	{"instance", flatString},
	{"after", flatString},
	{"watch", flatString},
	{"v", flatInt64},
	{"port", flatInt64},
	{"limit", flatInt},
	{"version", flatUint64},
	{"entries", flatBool},
}

// flatVal is one checked value, stored in the request only once the whole
// body has been accepted.
type flatVal struct {
	field int
	raw   []byte // flatRaw: the JSON text; flatString: the contents, without quotes
	i     int64
	u     uint64
	b     bool
}

// store sets v's field in r as json.Unmarshal would: a RawMessage is
// appended to its own backing array, and a pointer that is already set has
// its target overwritten.
func (v *flatVal) store(r *request) {
	switch flatFields[v.field].name {
	case "id":
		r.ID = append(r.ID[:0], v.raw...)
	case "name":
		setPtr(&r.Name, string(v.raw))
	case "host":
		setPtr(&r.Host, string(v.raw))
	case "proto":
		setPtr(&r.Proto, string(v.raw))
	case "token":
		r.Token = string(v.raw)
	case "instance":
		r.Instance = string(v.raw)
	case "after":
		r.After = string(v.raw)
	case "watch":
		r.Watch = string(v.raw)
	case "v":
		setPtr(&r.V, v.i)
	case "port":
		setPtr(&r.Port, v.i)
	case "limit":
		r.Limit = int(v.i)
	case "version":
		r.Version = v.u
	case "entries":
		r.Entries = v.b
	}
}

func setPtr[T any](p **T, v T) {
	if *p == nil {
		*p = new(T)
	}
	**p = v
}

func flatField(key []byte) int {
	for f := range flatFields {
		if flatFields[f].name == string(key) {
			return f
		}
	}
	return -1
}

// flatValue checks the value of the given kind at b[i:] and records it in
// v. It returns the index just after the value.
func flatValue(b []byte, i, kind int, v *flatVal) (int, bool) {
	switch kind {
	case flatRaw: // a string, with its quotes, or an integer
		var j int
		var ok bool
		if i < len(b) && b[i] == '"' {
			_, j, ok = scanString(b, i)
		} else {
			_, _, j, ok = scanInteger(b, i)
		}
		if ok {
			v.raw = b[i:j]
		}
		return j, ok
	case flatString:
		s, j, ok := scanString(b, i)
		v.raw = s
		return j, ok
	case flatInt64, flatInt, flatUint64:
		neg, u, j, ok := scanInteger(b, i)
		if !ok {
			return 0, false
		}
		hi := uint64(math.MaxInt64)
		switch kind {
		case flatUint64:
			v.u = u
			return j, !neg
		case flatInt:
			hi = math.MaxInt
		}
		if neg {
			v.i = int64(-u) // two's complement: also right for -hi-1
			return j, u <= hi+1
		}
		v.i = int64(u)
		return j, u <= hi
	case flatBool:
		if bytes.HasPrefix(b[i:], []byte("true")) {
			v.b = true
			return i + 4, true
		}
		if bytes.HasPrefix(b[i:], []byte("false")) {
			return i + 5, true
		}
	}
	return 0, false
}

// scanString reads a string at b[i:] that has only printable ASCII and no
// escapes, and returns its contents and the index after its closing quote.
func scanString(b []byte, i int) (s []byte, end int, ok bool) {
	if i == len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanInteger reads an integer -?(0|[1-9][0-9]*) at b[i:] that fits in a
// uint64 without its sign. A fraction or exponent after it is left for the
// caller to refuse as an unexpected byte.
func scanInteger(b []byte, i int) (neg bool, u uint64, end int, ok bool) {
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			return false, 0, 0, false
		}
		u = u*10 + d
	}
	if i == start || b[start] == '0' && i-start > 1 {
		return false, 0, 0, false // no digits, or a leading zero
	}
	return neg, u, i, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
