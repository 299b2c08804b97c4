package noise

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"runtime"

	flynn "github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/cpu"
)

// Tunnels use the Noise Protocol Framework (revision 34) through
// github.com/flynn/noise: Curve25519 (the server's key pair, the same one
// CURVE uses), BLAKE2s, and AES-256-GCM or ChaCha20-Poly1305, with
// x/crypto's curve25519, blake2s and chacha20poly1305 and the standard
// library's AES-GCM (x/crypto has none).

// Cipher selects the AEAD of a tunnel.
type Cipher uint8

// The ciphers.
const (
	// CipherAuto is AES-GCM where the CPU has AES instructions (AES-NI and
	// carry-less multiply on amd64, the AES and PMULL extensions on
	// arm64, ...), ChaCha20-Poly1305 otherwise.
	CipherAuto Cipher = iota
	CipherAESGCM
	CipherChaChaPoly
)

func (c Cipher) String() string {
	switch c {
	case CipherAESGCM:
		return "AESGCM"
	case CipherChaChaPoly:
		return "ChaChaPoly"
	}
	return "auto"
}

// HasAESHardware reports whether this CPU runs AES-GCM in hardware, which
// is when CipherAuto picks it.
func HasAESHardware() bool {
	switch runtime.GOARCH {
	case "amd64":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAES && cpu.S390X.HasAESGCM
	case "ppc64", "ppc64le":
		return cpu.PPC64.IsPOWER8
	}
	return false
}

func (c Cipher) resolve() Cipher {
	if c == CipherAuto {
		if HasAESHardware() {
			return CipherAESGCM
		}
		return CipherChaChaPoly
	}
	return c
}

// aeadFunc is a flynn.CipherFunc over a cipher.AEAD whose Cipher keeps its
// nonce buffer in the returned value, so records cost no allocation. A
// Cipher is only ever used by the one owner of its CipherState.
type aeadFunc struct {
	name string
	le   bool // ChaChaPoly encodes the counter little-endian, AESGCM big-endian
	new  func(key []byte) (cipher.AEAD, error)
}

func (f aeadFunc) CipherName() string { return f.name }

func (f aeadFunc) Cipher(k [32]byte) flynn.Cipher {
	a, err := f.new(k[:])
	clear(k[:])
	if err != nil {
		panic(err) // only for a key that is not 32 bytes, which cannot happen
	}
	return &aeadCipher{a: a, le: f.le}
}

type aeadCipher struct {
	a     cipher.AEAD
	le    bool
	nonce [12]byte
}

func (c *aeadCipher) setNonce(n uint64) []byte {
	if c.le {
		binary.LittleEndian.PutUint64(c.nonce[4:], n)
	} else {
		binary.BigEndian.PutUint64(c.nonce[4:], n)
	}
	return c.nonce[:]
}

func (c *aeadCipher) Encrypt(out []byte, n uint64, ad, plaintext []byte) []byte {
	return c.a.Seal(out, c.setNonce(n), plaintext, ad)
}

func (c *aeadCipher) Decrypt(out []byte, n uint64, ad, ciphertext []byte) ([]byte, error) {
	return c.a.Open(out, c.setNonce(n), ciphertext, ad)
}

var (
	cipherAESGCM = aeadFunc{name: "AESGCM", new: func(k []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}}
	cipherChaChaPoly = aeadFunc{name: "ChaChaPoly", le: true, new: chacha20poly1305.New}
)

func suiteFor(c Cipher) flynn.CipherSuite {
	if c == CipherAESGCM {
		return flynn.NewCipherSuite(flynn.DH25519, cipherAESGCM, flynn.HashBLAKE2s)
	}
	return flynn.NewCipherSuite(flynn.DH25519, cipherChaChaPoly, flynn.HashBLAKE2s)
}
