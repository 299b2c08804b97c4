package metrics

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Type is a metric family's TYPE.
type Type uint8

const (
	Counter Type = iota + 1 // only goes up (names end in _total)
	Gauge                   // goes up and down
)

// String is the type's name on a TYPE line.
func (t Type) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	}
	return "untyped"
}

// ErrName is a metric or label name that is not [a-zA-Z_:][a-zA-Z0-9_:]*
// (label names: no colon), or a family written twice.
var ErrName = errors.New("metrics: bad metric or label name")

// ContentType is the media type of what a Writer writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Writer appends metric families in the text format to B. Each family is a
// Family call (HELP and TYPE) followed by its Samples. The zero value is
// ready to use.
type Writer struct {
	B    []byte
	err  error
	seen map[string]bool
	fam  string // the current family's name
}

// Err is the first bad name met (nothing was written for it), or nil.
func (w *Writer) Err() error { return w.err }

// Family starts the family name, of type t, with a one-line help text.
func (w *Writer) Family(name string, t Type, help string) {
	w.fam = ""
	if !validName(name, true) || w.seen[name] {
		w.fail(name)
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[name], w.fam = true, name
	w.B = append(w.B, "# HELP "...)
	w.B = append(w.B, name...)
	w.B = append(w.B, ' ')
	w.B = appendEscaped(w.B, help, false)
	w.B = append(w.B, "\n# TYPE "...)
	w.B = append(w.B, name...)
	w.B = append(w.B, ' ')
	w.B = append(w.B, t.String()...)
	w.B = append(w.B, '\n')
}

// Sample writes one sample of the current family; labels are name, value
// pairs ("verb", "LOOKUP", "result", "ok"). Nothing is written after a bad
// Family or with an odd or bad label list.
func (w *Writer) Sample(v float64, labels ...string) {
	if w.fam == "" {
		return
	}
	if len(labels)%2 != 0 {
		w.fail(w.fam + " (odd label list)")
		return
	}
	for i := 0; i < len(labels); i += 2 {
		if !validName(labels[i], false) {
			w.fail(w.fam + " label " + labels[i])
			return
		}
	}
	w.B = append(w.B, w.fam...)
	if len(labels) > 0 {
		w.B = append(w.B, '{')
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				w.B = append(w.B, ',')
			}
			w.B = append(w.B, labels[i]...)
			w.B = append(w.B, `="`...)
			w.B = appendEscaped(w.B, labels[i+1], true)
			w.B = append(w.B, '"')
		}
		w.B = append(w.B, '}')
	}
	w.B = append(w.B, ' ')
	w.B = appendValue(w.B, v)
	w.B = append(w.B, '\n')
}

// One writes a family of one sample without labels.
func (w *Writer) One(name string, t Type, help string, v float64) {
	w.Family(name, t, help)
	w.Sample(v)
}

func (w *Writer) fail(what string) {
	if w.err == nil {
		w.err = fmt.Errorf("%w: %q", ErrName, what)
	}
}

func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendEscaped escapes \ and newlines (help texts), and " in label values.
// Invalid UTF-8 is replaced, since the format is UTF-8.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for _, r := range s {
		switch {
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, string(r)...) // U+FFFD for a bad byte
		}
	}
	return b
}

func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' || colon && c == ':'
		if !ok {
			return false
		}
	}
	return true
}
