package noise

import (
	"fmt"
	"io"
)

// The preamble: what an initiator sends before its first handshake
// message, 8 bytes, also the Noise prologue (so tampering with it fails
// the handshake). Its first byte is 'H', never 0xFF, which is how one
// listening port tells a tunnel from a ZMTP peer (whose greeting starts
// with 0xFF).
const (
	// PreambleMagic starts every tunnel connection.
	PreambleMagic = "HYNZ"
	// PreambleSize is the length of the preamble.
	PreambleSize    = 8
	preambleVersion = 1
	patternIK       = 'I'
	patternXX       = 'X'
	suiteAESGCM     = 'A'
	suiteChaChaPoly = 'C'
)

// IsTunnelPreamble reports whether b, the first bytes a peer sent (at
// least 1), can start a tunnel preamble. A listener shared with ZMTP peeks
// one byte: 0xFF is ZMTP, 'H' a tunnel.
func IsTunnelPreamble(b []byte) bool {
	n := min(len(b), len(PreambleMagic))
	return n > 0 && string(b[:n]) == PreambleMagic[:n]
}

// preamble is what an initiator sends before its first handshake message:
// the pattern it runs and the cipher it asks for.
type preamble struct {
	pattern byte   // patternIK or patternXX
	cipher  Cipher // CipherAESGCM or CipherChaChaPoly, never CipherAuto
}

// append appends the preamble's PreambleSize bytes.
func (p preamble) append(dst []byte) []byte {
	s := byte(suiteChaChaPoly)
	if p.cipher == CipherAESGCM {
		s = suiteAESGCM
	}
	return append(append(dst, PreambleMagic...), preambleVersion, p.pattern, s, 0)
}

// parsePreamble checks a preamble and returns it and its size.
func parsePreamble(b []byte) (preamble, int, error) {
	if len(b) < PreambleSize {
		return preamble{}, 0, fmt.Errorf("%w: %d bytes: %w", ErrPreamble, len(b), io.ErrUnexpectedEOF)
	}
	if string(b[:4]) != PreambleMagic {
		return preamble{}, 0, fmt.Errorf("%w: starts % x, not a tunnel", ErrPreamble, b[:4])
	}
	if b[4] != preambleVersion || b[7] != 0 {
		return preamble{}, 0, fmt.Errorf("%w: version %d (reserved %d), want %d", ErrPreamble, b[4], b[7], preambleVersion)
	}
	p := preamble{pattern: b[5]}
	switch p.pattern {
	case patternIK, patternXX:
	default:
		return preamble{}, 0, fmt.Errorf("%w: unknown pattern %q", ErrPreamble, b[5])
	}
	switch b[6] {
	case suiteAESGCM:
		p.cipher = CipherAESGCM
	case suiteChaChaPoly:
		p.cipher = CipherChaChaPoly
	default:
		return preamble{}, 0, fmt.Errorf("%w: unknown cipher %q", ErrPreamble, b[6])
	}
	return p, PreambleSize, nil
}
