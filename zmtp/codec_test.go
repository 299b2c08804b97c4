package zmtp

// Table tests, known answers and benchmarks for the codec: greetings, frame
// headers, commands, metadata, PING and ERROR bodies, and the frameReader
// that slices frames out of its read buffers. Everything here is pure
// computation over byte slices; nothing touches the network.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// codecGreeting returns a greeting the way a peer would send it: our
// encoding, with the padding and filler bytes overwritten by fill.
func codecGreeting(major, minor byte, mech string, asServer bool, fill byte) []byte {
	b := AppendGreeting(nil, Greeting{Major: major, Minor: minor, Mechanism: mech, AsServer: asServer})
	for i := 1; i < 9; i++ {
		b[i] = fill
	}
	for i := 33; i < GreetingSize; i++ {
		b[i] = fill
	}
	return b
}

func TestCodecGreetingKnownAnswer(t *testing.T) {
	got := AppendGreeting([]byte("prefix"), Greeting{Major: 3, Minor: 1, Mechanism: "NULL"})
	want := append([]byte("prefix"),
		0xFF, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x7F, // signature, 1 in the last padding byte
		3, 1, // version
		'N', 'U', 'L', 'L', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // mechanism
		0, // as-server
	)
	want = append(want, make([]byte, 31)...) // filler
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendGreeting:\n got % x\nwant % x", got, want)
	}

	got = AppendGreeting(nil, Greeting{Major: 3, Minor: 0, Mechanism: "PLAIN", AsServer: true})
	if got[10] != 3 || got[11] != 0 || string(got[12:17]) != "PLAIN" || got[17] != 0 || got[32] != 1 {
		t.Fatalf("PLAIN 3.0 server greeting: % x", got)
	}
}

func TestCodecGreetingRoundTrip(t *testing.T) {
	for _, g := range []Greeting{
		{Major: 3, Minor: 0, Mechanism: "NULL"},
		{Major: 3, Minor: 1, Mechanism: "NULL"},
		{Major: 3, Minor: 0, Mechanism: "PLAIN"},
		{Major: 3, Minor: 1, Mechanism: "PLAIN", AsServer: true},
		{Major: 3, Minor: 1, Mechanism: "CURVE", AsServer: true},
		{Major: 3, Minor: 1, Mechanism: "ABCDEFGHIJKLMNOPQRST"}, // all 20 bytes used
		{Major: 3, Minor: 1, Mechanism: ""},
		{Major: 4, Minor: 7, Mechanism: "X-MY.MECH+1_2"}, // later versions are accepted
	} {
		for _, fill := range []byte{0, 0x01, 0xAA, 0xFF} {
			b := codecGreeting(g.Major, g.Minor, g.Mechanism, g.AsServer, fill)
			got, err := ParseGreeting(b)
			if err != nil {
				t.Errorf("%+v fill %#x: %v", g, fill, err)
				continue
			}
			if got != g {
				t.Errorf("fill %#x: parsed %+v, want %+v", fill, got, g)
			}
		}
	}
}

func TestCodecGreetingErrors(t *testing.T) {
	valid := func() []byte { return codecGreeting(3, 1, "NULL", false, 0) }
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"bad first byte", func(b []byte) []byte { b[0] = 0xFE; return b }, ErrBadSignature},
		{"first byte zero", func(b []byte) []byte { b[0] = 0; return b }, ErrBadSignature},
		{"signature end without bit 0", func(b []byte) []byte { b[9] = 0x7E; return b }, ErrBadSignature},
		{"HTTP request", func(b []byte) []byte { return append([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), b...) }, ErrBadSignature},
		{"version 2.0", func(b []byte) []byte { b[10], b[11] = 2, 0; return b }, ErrBadVersion},
		{"version 2.9", func(b []byte) []byte { b[10], b[11] = 2, 9; return b }, ErrBadVersion},
		{"version 1.0", func(b []byte) []byte { b[10], b[11] = 1, 0; return b }, ErrBadVersion},
		{"version 0.0", func(b []byte) []byte { b[10], b[11] = 0, 0; return b }, ErrBadVersion},
		{"as-server 2", func(b []byte) []byte { b[32] = 2; return b }, ErrHandshake},
		{"as-server 0xFF", func(b []byte) []byte { b[32] = 0xFF; return b }, ErrHandshake},
		{"lowercase mechanism", func(b []byte) []byte { copy(b[12:], "null"); return b }, ErrMechanism},
		{"byte after the NUL", func(b []byte) []byte { copy(b[12:], "NU\x00L"); return b }, ErrMechanism},
		// "NULL", NULs, then a stray letter in the field's last byte.
		{"garbage after the padding", func(b []byte) []byte { b[31] = 'X'; return b }, ErrMechanism},
		{"0xFF in mechanism", func(b []byte) []byte { b[16] = 0xFF; return b }, ErrMechanism},
		{"space in mechanism", func(b []byte) []byte { b[16] = ' '; return b }, ErrMechanism},
		{"control bytes in mechanism", func(b []byte) []byte {
			for i := 12; i < 32; i++ {
				b[i] = byte(i)
			}
			return b
		}, ErrMechanism},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(valid())
			_, err := ParseGreeting(b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseGreeting(% x) = %v, want %v", b[:33], err, tt.want)
			}
		})
	}
}

// TestCodecGreetingTruncated checks every proper prefix of a greeting.
func TestCodecGreetingTruncated(t *testing.T) {
	b := codecGreeting(3, 1, "PLAIN", true, 0x55)
	for n := range len(b) {
		if _, err := ParseGreeting(b[:n]); err != io.ErrUnexpectedEOF {
			t.Fatalf("ParseGreeting of %d of 64 bytes: %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
	// Bytes after the greeting belong to the next layer and are ignored.
	if _, err := ParseGreeting(append(b, 0x04, 0x19)); err != nil {
		t.Fatalf("greeting followed by a frame: %v", err)
	}
}

func TestCodecFrameHeader(t *testing.T) {
	long := func(flags byte, size uint64) []byte {
		return binary.BigEndian.AppendUint64([]byte{flags | FlagLong}, size)
	}
	const max = 1 << 20
	tests := []struct {
		name      string
		in        []byte
		max       int64
		flags     byte
		size      int64
		n         int
		canonical bool // AppendFrameHeader gives back exactly in[:n]
		err       error
	}{
		{"empty short", []byte{0, 0}, max, 0, 0, 2, true, nil},
		{"short", []byte{0, 5, 'h', 'e', 'l', 'l', 'o'}, max, 0, 5, 2, true, nil},
		{"short 255", []byte{FlagMore, 255}, max, FlagMore, 255, 2, true, nil},
		{"short command", []byte{FlagCommand, 0x19}, max, FlagCommand, 25, 2, true, nil},
		{"short more+command", []byte{FlagMore | FlagCommand, 1}, max, FlagMore | FlagCommand, 1, 2, true, nil},
		{"long 256", long(0, 256), max, FlagLong, 256, 9, true, nil},
		{"long more", long(FlagMore, 70000), max, FlagMore | FlagLong, 70000, 9, true, nil},
		{"long at max", long(0, max), max, FlagLong, max, 9, true, nil},
		// libzmq never sends these, but the spec allows a long size for
		// any body, so they are accepted; re-encoding gives the short form.
		{"long with size 5", long(0, 5), max, FlagLong, 5, 9, false, nil},
		{"long with size 0", long(FlagCommand, 0), max, FlagCommand | FlagLong, 0, 9, false, nil},
		{"long with size 255", long(0, 255), max, FlagLong, 255, 9, false, nil},
		{"long max int64 under max int64", long(0, math.MaxInt64), math.MaxInt64, FlagLong, math.MaxInt64, 9, true, nil},

		{"reserved bit 3", []byte{0x08, 0}, max, 0, 0, 0, false, ErrBadFlags},
		{"reserved bit 7", []byte{0x80, 0}, max, 0, 0, 0, false, ErrBadFlags},
		{"all bits", []byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 0}, max, 0, 0, 0, false, ErrBadFlags},
		{"reserved bits on a long frame", long(0xF0, 1), max, 0, 0, 0, false, ErrBadFlags},

		{"short over max", []byte{0, 200}, 100, 0, 0, 0, false, ErrFrameTooLarge},
		{"short over zero max", []byte{0, 1}, 0, 0, 0, 0, false, ErrFrameTooLarge},
		{"long max+1", long(0, max+1), max, 0, 0, 0, false, ErrFrameTooLarge},
		{"long 2^32", long(0, 1<<32), max, 0, 0, 0, false, ErrFrameTooLarge},
		{"long 2^50", long(0, 1<<50), max, 0, 0, 0, false, ErrFrameTooLarge},
		{"long 2^63-1", long(0, math.MaxInt64), max, 0, 0, 0, false, ErrFrameTooLarge},
		{"long 2^63", long(0, 1<<63), max, 0, 0, 0, false, ErrFrameTooLarge},
		{"long 2^63 under max int64", long(0, 1<<63), math.MaxInt64, 0, 0, 0, false, ErrFrameTooLarge},
		{"long 2^64-1", long(0, math.MaxUint64), math.MaxInt64, 0, 0, 0, false, ErrFrameTooLarge},
		// A negative limit admits nothing, and must not wrap around.
		{"long 2^63 under negative max", long(0, 1<<63), -1, 0, 0, 0, false, ErrFrameTooLarge},
		{"long 2^64-1 under min int64", long(0, math.MaxUint64), math.MinInt64, 0, 0, 0, false, ErrFrameTooLarge},
		{"empty under negative max", []byte{0, 0}, -1, 0, 0, 0, false, ErrFrameTooLarge},

		{"nothing", nil, max, 0, 0, 0, false, io.ErrUnexpectedEOF},
		{"flags only", []byte{0}, max, 0, 0, 0, false, io.ErrUnexpectedEOF},
		{"long flags only", []byte{FlagLong}, max, 0, 0, 0, false, io.ErrUnexpectedEOF},
		{"long, 7 size bytes", long(0, 1<<40)[:8], max, 0, 0, 0, false, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, size, n, err := ParseFrameHeader(tt.in, tt.max)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if flags != 0 || size != 0 || n != 0 {
					t.Fatalf("error result carries values: flags %#x size %d n %d", flags, size, n)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if flags != tt.flags || size != tt.size || n != tt.n {
				t.Fatalf("got flags %#x size %d n %d, want %#x %d %d", flags, size, n, tt.flags, tt.size, tt.n)
			}
			if size > math.MaxInt32 {
				return // AppendFrameHeader takes an int; nothing to re-encode
			}
			re := AppendFrameHeader(nil, flags, int(size))
			if tt.canonical != bytes.Equal(re, tt.in[:n]) {
				t.Fatalf("re-encoded % x from % x; canonical %v", re, tt.in[:n], tt.canonical)
			}
			// Re-encoding always parses back to the same frame.
			f2, s2, _, err := ParseFrameHeader(re, tt.max)
			if err != nil || f2&^FlagLong != flags&^FlagLong || s2 != size {
				t.Fatalf("re-encoded header parses to %#x %d %v", f2, s2, err)
			}
		})
	}
}

// TestCodecFrameTooLargeAllocatesNothing checks that a header announcing
// more than the limit costs no more than its error value: the size is
// refused before anything of that size exists.
func TestCodecFrameTooLargeAllocatesNothing(t *testing.T) {
	for _, size := range []uint64{1 << 30, 1 << 50, 1 << 63, math.MaxUint64} {
		hdr := binary.BigEndian.AppendUint64([]byte{FlagLong}, size)
		bytesPerRun := codecAllocatedBytes(100, func() {
			if _, _, _, err := ParseFrameHeader(hdr, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("size %d: %v", size, err)
			}
		})
		if bytesPerRun > 1024 {
			t.Errorf("refusing a %d-byte frame allocated %d bytes per call", size, bytesPerRun)
		}
	}
	// The reader, too, refuses before allocating the body.
	stream := binary.BigEndian.AppendUint64([]byte{FlagLong}, 1<<40)
	r := bytes.NewReader(stream)
	fr := newFrameReader(r)
	bytesPerRun := codecAllocatedBytes(20, func() {
		r.Reset(stream)
		fr.rpos, fr.wpos = 0, 0
		if _, _, err := fr.next(1 << 20); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("frameReader: %v", err)
		}
	})
	if bytesPerRun > 1024 {
		t.Errorf("frameReader refusing a 2^40-byte frame allocated %d bytes per call", bytesPerRun)
	}
}

// codecAllocatedBytes returns the heap bytes f allocates per call, averaged over
// runs calls after a first one.
func codecAllocatedBytes(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

func TestCodecAppendFrameKnownAnswers(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"empty", AppendFrame(nil, 0, nil), []byte{0, 0}},
		{"hello", AppendFrame(nil, FlagMore, []byte("hello")), []byte{1, 5, 'h', 'e', 'l', 'l', 'o'}},
		{"FlagLong ignored on a short body", AppendFrame(nil, FlagLong, []byte{9}), []byte{0, 1, 9}},
		{"255 is short", AppendFrameHeader(nil, 0, 255), []byte{0, 255}},
		{"256 is long", AppendFrameHeader(nil, FlagMore, 256), []byte{FlagMore | FlagLong, 0, 0, 0, 0, 0, 0, 1, 0}},
		{"2 GiB - 1", AppendFrameHeader(nil, FlagCommand, math.MaxInt32), []byte{FlagCommand | FlagLong, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}},
		{"appends", AppendFrame([]byte{0xAA}, 0, []byte("x")), []byte{0xAA, 0, 1, 'x'}},
		{"multipart", AppendMessage(nil, [][]byte{[]byte("a"), nil, []byte("bc")}),
			[]byte{FlagMore, 1, 'a', FlagMore, 0, 0, 2, 'b', 'c'}},
		{"one part", AppendMessage(nil, [][]byte{[]byte("a")}), []byte{0, 1, 'a'}},
		{"no parts", AppendMessage([]byte{}, nil), []byte{}},
		// The READY a REQ socket sends with no other properties.
		{"READY", AppendCommand(nil, CmdReady, AppendMetadata(nil, Metadata{{PropSocketType, []byte("REQ")}})),
			[]byte("\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ")},
		{"PING", AppendCommand(nil, CmdPing, []byte{0, 30, 'c', 't', 'x'}), []byte("\x04\x0a\x04PING\x00\x1ectx")},
		{"SUBSCRIBE", AppendCommand(nil, CmdSubscribe, []byte("topic")), []byte("\x04\x0f\x09SUBSCRIBEtopic")},
		{"ERROR", AppendCommand(nil, CmdError, AppendErrorBody(nil, "Invalid socket type")),
			[]byte("\x04\x1a\x05ERROR\x13Invalid socket type")},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, tt.got, tt.want)
		}
	}
	// A long command: the header switches to 8 bytes at 256 bytes of body.
	body := AppendCommandBody(nil, "X-BIG", make([]byte, 250))
	frame := AppendCommand(nil, "X-BIG", make([]byte, 250))
	if len(body) != 256 || !bytes.Equal(frame[:9], []byte{FlagCommand | FlagLong, 0, 0, 0, 0, 0, 0, 1, 0}) || !bytes.Equal(frame[9:], body) {
		t.Errorf("long command frame: % x", frame[:12])
	}
}

func TestCodecErrorBody(t *testing.T) {
	long := strings.Repeat("x", 300)
	b := AppendErrorBody(nil, long)
	if len(b) != 256 || b[0] != 255 {
		t.Fatalf("300-byte reason: body of %d bytes, length byte %d", len(b), b[0])
	}
	if r, err := ParseError(b); err != nil || r != long[:255] {
		t.Fatalf("ParseError of a cut reason: %q, %v", r, err)
	}
	for _, tt := range []struct {
		in   []byte
		want string
		ok   bool
	}{
		{[]byte{0}, "", true},
		{[]byte("\x05nope!"), "nope!", true},
		{nil, "", false},
		{[]byte{5, 'a'}, "", false},         // length beyond the body
		{[]byte{1, 'a', 'b'}, "", false},    // bytes after the reason
		{[]byte{0xFF, 'a', 'b'}, "", false}, // length 255, 2 bytes
		{[]byte("\x13Invalid socket typ"), "", false},
	} {
		r, err := ParseError(tt.in)
		if tt.ok != (err == nil) || r != tt.want {
			t.Errorf("ParseError(% x) = %q, %v", tt.in, r, err)
		}
		if err != nil && !errors.Is(err, ErrBadCommand) {
			t.Errorf("ParseError(% x): %v is not ErrBadCommand", tt.in, err)
		}
	}
}

func TestCodecPing(t *testing.T) {
	for _, tt := range []struct {
		in  []byte
		ttl uint16
		ctx string
		ok  bool
	}{
		{[]byte{0, 0}, 0, "", true},
		{[]byte{0x01, 0x2C}, 300, "", true},
		{[]byte{0xFF, 0xFF, 'a'}, 65535, "a", true},
		{append([]byte{0, 10}, "0123456789abcdef"...), 10, "0123456789abcdef", true}, // 16 bytes of context
		{append([]byte{0, 10}, "0123456789abcdefg"...), 0, "", false},                // 17
		{nil, 0, "", false},
		{[]byte{1}, 0, "", false},
	} {
		p, err := ParsePing(tt.in)
		if tt.ok != (err == nil) {
			t.Errorf("ParsePing(% x): %v", tt.in, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Errorf("ParsePing(% x): %v is not ErrBadCommand", tt.in, err)
			}
			continue
		}
		if p.TTL != tt.ttl || string(p.Context) != tt.ctx {
			t.Errorf("ParsePing(% x) = %d %q", tt.in, p.TTL, p.Context)
		}
	}
}

func TestCodecCommand(t *testing.T) {
	for _, tt := range []struct {
		in   []byte
		name string
		body string
		ok   bool
	}{
		{[]byte("\x05READY"), "READY", "", true},
		{[]byte("\x04PINGxy"), "PING", "xy", true},
		{[]byte("\x01X"), "X", "", true},
		{append([]byte{255}, bytes.Repeat([]byte{'N'}, 255)...), strings.Repeat("N", 255), "", true},
		{nil, "", "", false},
		{[]byte{0}, "", "", false},           // empty name
		{[]byte{0, 'a'}, "", "", false},      // empty name, then data
		{[]byte("\x06READY"), "", "", false}, // name cut short
		{append([]byte{255}, bytes.Repeat([]byte{'N'}, 254)...), "", "", false},
	} {
		cmd, err := ParseCommand(tt.in)
		if tt.ok != (err == nil) {
			t.Errorf("ParseCommand(% x): %v", head(tt.in), err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Errorf("ParseCommand(% x): %v is not ErrBadCommand", head(tt.in), err)
			}
			continue
		}
		if cmd.Name != tt.name || string(cmd.Body) != tt.body {
			t.Errorf("ParseCommand(% x) = %q %q", head(tt.in), cmd.Name, cmd.Body)
		}
		if re := AppendCommandBody(nil, cmd.Name, cmd.Body); !bytes.Equal(re, tt.in) {
			t.Errorf("re-encoded % x, want % x", re, tt.in)
		}
	}
}

// codecMetadata is the READY metadata of a libzmq DEALER with a routing id
// and a user property: mixed case names, an empty value, a binary one.
var codecMetadata = Metadata{
	{PropSocketType, []byte("DEALER")},
	{PropIdentity, []byte("client-1")},
	{"X-Empty", nil},
	{"x-binary.v+1_", []byte{0, 1, 2, 0xFF}},
}

func TestCodecMetadataRoundTrip(t *testing.T) {
	b := AppendMetadata(nil, codecMetadata)
	want := "\x0bSocket-Type\x00\x00\x00\x06DEALER" +
		"\x08Identity\x00\x00\x00\x08client-1" +
		"\x07X-Empty\x00\x00\x00\x00" +
		"\x0dx-binary.v+1_\x00\x00\x00\x04\x00\x01\x02\xff"
	if string(b) != want {
		t.Fatalf("AppendMetadata:\n got %q\nwant %q", b, want)
	}
	m, err := ParseMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != len(codecMetadata) {
		t.Fatalf("parsed %d properties, want %d", len(m), len(codecMetadata))
	}
	for i, p := range m {
		if p.Name != codecMetadata[i].Name || !bytes.Equal(p.Value, codecMetadata[i].Value) {
			t.Errorf("property %d = %q: %q", i, p.Name, p.Value)
		}
		// Values alias the input, capped so appending cannot overwrite it.
		if cap(p.Value) != len(p.Value) {
			t.Errorf("property %q: value has spare capacity %d", p.Name, cap(p.Value)-len(p.Value))
		}
	}
	if re := AppendMetadata(nil, m); !bytes.Equal(re, b) {
		t.Fatalf("re-encoded metadata differs:\n% x\n% x", re, b)
	}
	if m, err := ParseMetadata(nil); err != nil || len(m) != 0 {
		t.Fatalf("empty metadata: %v, %v", m, err)
	}
}

func TestCodecMetadataGetIgnoresCase(t *testing.T) {
	m, err := ParseMetadata(AppendMetadata(nil, codecMetadata))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Socket-Type", "socket-type", "SOCKET-TYPE", "sOcKeT-tYpE"} {
		if v, ok := m.Get(name); !ok || string(v) != "DEALER" {
			t.Errorf("Get(%q) = %q, %v", name, v, ok)
		}
	}
	if v, ok := m.Get("X-BINARY.V+1_"); !ok || !bytes.Equal(v, []byte{0, 1, 2, 0xFF}) {
		t.Errorf("Get of the binary property = % x, %v", v, ok)
	}
	if v, ok := m.Get("x-empty"); !ok || len(v) != 0 {
		t.Errorf("Get of the empty property = %q, %v", v, ok)
	}
	if _, ok := m.Get("Routing-Id"); ok {
		t.Error("Get of a missing property succeeded")
	}
	if _, ok := m.Get("Socket-Typ"); ok {
		t.Error("Get matched a prefix")
	}
	// The first of two properties of the same name (any case) wins.
	dup := Metadata{{"identity", []byte("first")}, {"IDENTITY", []byte("second")}}
	if v, _ := dup.Get("Identity"); string(v) != "first" {
		t.Errorf("Get with duplicates = %q, want the first", v)
	}
}

func TestCodecMetadataErrors(t *testing.T) {
	u32 := func(n uint32) string { return string(binary.BigEndian.AppendUint32(nil, n)) }
	for _, tt := range []struct {
		name string
		in   string
	}{
		{"zero name length", "\x00\x00\x00\x00\x00"},
		{"name longer than the rest", "\x0bSocket"},
		{"name length 255, 3 bytes", "\xffabc"},
		{"no value length", "\x01a"},
		{"3 bytes of value length", "\x01a\x00\x00\x00"},
		{"value longer than the rest", "\x01a" + u32(4) + "abc"},
		{"value length 2^31", "\x01a" + u32(1<<31) + "abc"},
		{"value length 2^32-1", "\x01a" + u32(math.MaxUint32)},
		{"space in name", "\x02a " + u32(0)},
		{"colon in name", "\x02a:" + u32(0)},
		{"NUL in name", "\x02a\x00" + u32(0)},
		{"UTF-8 in name", "\x02\xc3\xa9" + u32(0)},
		{"good then bad", "\x01a" + u32(1) + "x" + "\x00"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMetadata([]byte(tt.in))
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("ParseMetadata(%q) = %v, %v; want ErrBadMetadata", tt.in, m, err)
			}
			if m != nil {
				t.Fatalf("error result carries %d properties", len(m))
			}
		})
	}
	// A value length near 2^32 costs nothing: it is checked against what
	// is there before it is used.
	in := []byte("\x01a" + u32(math.MaxUint32) + "tail")
	if n := codecAllocatedBytes(100, func() { ParseMetadata(in) }); n > 1024 {
		t.Errorf("refusing a 4 GiB value allocated %d bytes per call", n)
	}
}

// TestCodecMetadataTruncated cuts a valid block at every length: a cut on a
// property boundary is valid metadata of the properties before it, any
// other cut is ErrBadMetadata.
func TestCodecMetadataTruncated(t *testing.T) {
	b := AppendMetadata(nil, codecMetadata)
	boundaries := map[int]int{0: 0} // offset → properties before it
	off := 0
	for i, p := range codecMetadata {
		off += 1 + len(p.Name) + 4 + len(p.Value)
		boundaries[off] = i + 1
	}
	for n := 0; n < len(b); n++ {
		m, err := ParseMetadata(b[:n])
		if k, ok := boundaries[n]; ok {
			if err != nil || len(m) != k {
				t.Fatalf("cut at boundary %d: %d properties, %v; want %d", n, len(m), err, k)
			}
			continue
		}
		if !errors.Is(err, ErrBadMetadata) {
			t.Fatalf("cut at %d of %d: %v, want ErrBadMetadata", n, len(b), err)
		}
	}
}

// TestCodecFrameTruncated checks every proper prefix of valid frames:
// ParseFrameHeader reports io.ErrUnexpectedEOF while the header is
// incomplete, and a frameReader reading the prefix to its end reports
// io.ErrUnexpectedEOF wherever the cut falls inside a frame (or the
// greeting), io.EOF only where it falls between two.
func TestCodecFrameTruncated(t *testing.T) {
	greeting := codecGreeting(3, 1, "NULL", false, 0)
	ready := AppendCommand(nil, CmdReady, AppendMetadata(nil, codecMetadata))
	tests := []struct {
		name     string
		greeting bool // the input starts with a greeting
		frames   [][]byte
	}{
		{"short", false, [][]byte{AppendFrame(nil, FlagMore, []byte("hello"))}},
		{"long", false, [][]byte{AppendFrame(nil, 0, bytes.Repeat([]byte("z"), 300))}},
		{"long size 3", false, [][]byte{append(binary.BigEndian.AppendUint64([]byte{FlagLong}, 3), "abc"...)}},
		{"command", false, [][]byte{ready}},
		{"empty", false, [][]byte{AppendFrame(nil, 0, nil)}},
		{"direct read", false, [][]byte{AppendFrame(nil, 0, bytes.Repeat([]byte("d"), directReadMin+10))}},
		{"two frames", false, [][]byte{AppendFrame(nil, FlagMore, []byte("a")), AppendFrame(nil, 0, []byte("bc"))}},
		{"greeting and READY", true, [][]byte{ready}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var full []byte
			boundaries := map[int]bool{0: true}
			skip := 0
			if tt.greeting {
				full, skip = greeting, GreetingSize
				boundaries[skip] = true
			}
			for _, f := range tt.frames {
				full = append(full, f...)
				boundaries[len(full)] = true
			}
			step := 1
			if len(full) > 4096 {
				step = 97 // the direct-read frame: a sample of cuts is enough
			}
			for n := 0; n < len(full); n += step {
				cut := full[:n]
				if n >= skip {
					_, _, _, err := ParseFrameHeader(cut[skip:], 1<<20)
					if err != nil && err != io.ErrUnexpectedEOF {
						t.Fatalf("header of %d bytes: %v", n, err)
					}
				}
				want := io.ErrUnexpectedEOF
				if boundaries[n] {
					want = io.EOF
				}
				if err := codecReadAllFrames(cut, skip); err != want {
					t.Fatalf("cut at %d of %d: %v, want %v", n, len(full), err, want)
				}
			}
			if err := codecReadAllFrames(full, skip); err != io.EOF {
				t.Fatalf("whole input: %v, want io.EOF after the last frame", err)
			}
		})
	}
}

// codecReadAllFrames runs a frameReader over b (a greeting of skip bytes first)
// until it fails, and returns that error.
func codecReadAllFrames(b []byte, skip int) error {
	fr := newFrameReader(&codecChunkReader{b: b, max: 7})
	if skip > 0 {
		if _, err := fr.readFull(skip); err != nil {
			return err
		}
	}
	for {
		if _, _, err := fr.next(1 << 20); err != nil {
			return err
		}
	}
}

// codecChunkReader returns b in reads of at most max bytes (all of it for 0),
// then io.EOF.
type codecChunkReader struct {
	b   []byte
	max int
	rng *rand.Rand // when set, each read is 1..max bytes at random
}

func (r *codecChunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if r.max > 0 {
		m := r.max
		if r.rng != nil {
			m = 1 + r.rng.IntN(r.max)
		}
		n = min(n, m)
	}
	n = copy(p, r.b[:min(n, len(r.b))])
	r.b = r.b[n:]
	return n, nil
}

// TestCodecFrameReaderStraddle reads a stream much larger than the read
// buffer, of frames of every size class, in reads of random sizes, and
// checks each frame against the encoder's input and that no frame handed
// out is overwritten by later reads.
func TestCodecFrameReaderStraddle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	var stream []byte
	for total := 0; total < 5*readBufSize; {
		var size int
		switch rng.IntN(5) {
		case 0:
			size = rng.IntN(256)
		case 1:
			size = 256 + rng.IntN(4096)
		case 2:
			size = directReadMin - 2 + rng.IntN(4) // around the direct-read threshold
		case 3:
			size = readBufSize - 16 + rng.IntN(32) // around the buffer size
		default:
			size = rng.IntN(64)
		}
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		flags := byte(rng.IntN(2)) * FlagMore
		want = append(want, body)
		stream = AppendFrame(stream, flags, body)
		total += size
	}
	for _, maxRead := range []int{0, 1, 9, 1000, 70000} {
		t.Run(fmt.Sprint("reads of ", maxRead), func(t *testing.T) {
			if maxRead == 1 && testing.Short() {
				t.Skip("byte-at-a-time reads in -short mode")
			}
			fr := newFrameReader(&codecChunkReader{b: stream, max: maxRead, rng: rng})
			var got [][]byte
			for {
				_, body, err := fr.next(1 << 20)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("frame %d: %v", len(got), err)
				}
				if len(got) < len(want) && !bytes.Equal(body, want[len(got)]) {
					t.Fatalf("frame %d: %d bytes differ from the %d sent", len(got), len(body), len(want[len(got)]))
				}
				got = append(got, body)
			}
			if len(got) != len(want) {
				t.Fatalf("read %d frames, want %d", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("frame %d was overwritten after it was handed out", i)
				}
			}
		})
	}
}

// TestCodecSteadyStateAllocs checks that encoding into a buffer with room,
// parsing a header and reading small frames allocate nothing per frame.
func TestCodecSteadyStateAllocs(t *testing.T) {
	body := make([]byte, 256)
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], FlagMore, body) }); n != 0 {
		t.Errorf("AppendFrame: %v allocs per frame", n)
	}
	hdr := AppendFrameHeader(nil, 0, 70000)
	if n := testing.AllocsPerRun(100, func() { ParseFrameHeader(hdr, 1<<20) }); n != 0 {
		t.Errorf("ParseFrameHeader: %v allocs per header", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendMetadata(buf[:0], codecMetadata) }); n != 0 {
		t.Errorf("AppendMetadata: %v allocs", n)
	}
	for _, size := range []int{16, 256, 4096} {
		r := newCodecLoopReader(AppendFrame(nil, 0, make([]byte, size)), 1<<20)
		fr := newFrameReader(r)
		// A fresh 64 KiB buffer every readBufSize/size frames is the whole
		// cost; averaged over many frames that is well under one alloc.
		const frames = 10000
		n := testing.AllocsPerRun(1, func() {
			for range frames {
				if _, _, err := fr.next(1 << 20); err != nil {
					t.Fatal(err)
				}
			}
		})
		if perFrame := n / frames; perFrame > 0.1 {
			t.Errorf("frameReader, %d-byte frames: %.3f allocs per frame", size, perFrame)
		}
	}
}

// codecLoopReader serves a stream made of the same encoded frame repeated
// forever, in reads of at most chunk bytes.
type codecLoopReader struct {
	pattern []byte
	off     int
	chunk   int
}

func newCodecLoopReader(frame []byte, chunk int) *codecLoopReader {
	// Repeat the frame so a read copies many frames at a time.
	p := frame
	for len(p) < 64<<10 {
		p = append(p, frame...)
	}
	return &codecLoopReader{pattern: p, chunk: chunk}
}

func (r *codecLoopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && n < r.chunk {
		m := copy(p[n:min(len(p), r.chunk)], r.pattern[r.off:])
		n += m
		r.off = (r.off + m) % len(r.pattern)
	}
	return n, nil
}

var codecSizes = []int{16, 256, 4096, 65536}

func BenchmarkAppendFrame(b *testing.B) {
	for _, size := range codecSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			body := make([]byte, size)
			buf := make([]byte, 0, size+MaxFrameHeader)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendFrame(buf[:0], FlagMore, body)
			}
		})
	}
}

func BenchmarkParseFrameHeader(b *testing.B) {
	for _, size := range codecSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			hdr := AppendFrameHeader(nil, FlagMore, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := ParseFrameHeader(hdr, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFrameReader decodes frames through the connection's frameReader
// from an endless in-memory stream, so it measures parsing and buffer
// management without the network.
func BenchmarkFrameReader(b *testing.B) {
	for _, size := range codecSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			fr := newFrameReader(newCodecLoopReader(AppendFrame(nil, 0, make([]byte, size)), 1<<20))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := fr.next(1 << 20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCodecFrameReaderHugeLimit checks the reader under a limit far above
// what memory holds (MaxMsgSize set to "unlimited"): a frame announcing
// up to 2^63-1 bytes must cost memory only as its bytes arrive, and a
// peer that stops sending must end in io.ErrUnexpectedEOF, not a panic of
// make or an out-of-memory crash.
func TestCodecFrameReaderHugeLimit(t *testing.T) {
	for _, size := range []uint64{1 << 40, 1 << 50, math.MaxInt64} {
		stream := binary.BigEndian.AppendUint64([]byte{FlagLong}, size)
		stream = append(stream, bytes.Repeat([]byte("x"), 100_000)...)
		var err error
		n := codecAllocatedBytes(3, func() {
			fr := newFrameReader(&codecChunkReader{b: stream, max: 4096})
			_, _, err = fr.next(math.MaxInt64)
		})
		if size > math.MaxInt {
			// 32-bit platforms: no slice can hold it, refused up front.
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Errorf("frame of %d bytes on a %d-bit platform: %v, want ErrFrameTooLarge", size, strconv.IntSize, err)
			}
		} else if err != io.ErrUnexpectedEOF {
			t.Errorf("frame of %d bytes cut after 100000: %v, want io.ErrUnexpectedEOF", size, err)
		}
		// A read buffer and the body's first allocation (directReadAlloc),
		// not anything near the size announced.
		if n > 2*directReadAlloc {
			t.Errorf("frame of %d bytes cut after 100000 allocated %d bytes", size, n)
		}
	}
	// A whole large frame still reads correctly.
	body := bytes.Repeat([]byte("0123456789"), 300_000)
	fr := newFrameReader(&codecChunkReader{b: AppendFrame(nil, FlagMore, body), max: 5000})
	flags, got, err := fr.next(math.MaxInt64)
	if err != nil || flags != FlagMore|FlagLong || !bytes.Equal(got, body) {
		t.Fatalf("3 MB frame: flags %#x, %d bytes, %v", flags, len(got), err)
	}
}
