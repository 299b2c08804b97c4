package noise

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds (re)writes the committed fuzz seeds under
// testdata/fuzz: genuine first flights of our initiator with the fixed
// keys the fuzz targets use, and hand-made edge cases. Run it when a
// format changes:
//
//	HYDRA_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./secure/noise/
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HYDRA_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HYDRA_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	seed := func(target, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	seed("FuzzNoiseHandshake", "ik-aesgcm-genuine", append([]byte{5}, genuineFirstFlight(t, true, CipherAESGCM)...))
	seed("FuzzNoiseHandshake", "xx-chachapoly-genuine", append([]byte{1}, genuineFirstFlight(t, false, CipherChaChaPoly)...))
	seed("FuzzNoiseHandshake", "http-request", append([]byte{64}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"...))
	// A ZMTP 3.1 CURVE greeting (signature, version, mechanism, as-server,
	// filler), spelled out so this package does not import zmtp.
	greeting := append([]byte("\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x01CURVE"), make([]byte, 64-17)...)
	seed("FuzzNoiseHandshake", "zmtp-greeting", append([]byte{10}, greeting...))
	seed("FuzzNoiseHandshake", "preamble-then-huge-length", []byte("\x08HYNZ\x01IA\x00\xff\xff"))
	seed("FuzzNoiseHandshake", "preamble-unknown-cipher", []byte("\x08HYNZ\x01IZ\x00\x00\x60"))
	seed("FuzzNoiseRecordReader", "records-intact", append([]byte{7, 33, 1}, []byte("\x05hello\x03abc\x09abcdefghi00000000000000000")[:16]...))
	seed("FuzzNoiseRecordReader", "length-below-tag", []byte{200, 200, 0, 0, 15, 1, 2, 3})
	seed("FuzzNoiseRecordReader", "truncated-record", []byte{1, 100, 0, 0xff, 0xff, 1, 2, 3})
}
