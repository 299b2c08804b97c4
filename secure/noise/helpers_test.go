package noise

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/secure"
)

// The example key pairs of libzmq's zmq_curve(7) manual page, used as
// fixed test identities.
const (
	docClientSecret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
	docServerSecret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
)

func mustKeyPair(t testing.TB, secret string) secure.KeyPair {
	t.Helper()
	s, err := secure.ParseSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := secure.KeyPairFromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// detRand is a deterministic randomness source, so a fuzz input always
// replays the same handshake.
func detRand(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// fuzzKeys are the fixed identities of the fuzz targets: the libzmq manual
// key pairs, the same ones zmtp/curve's fuzz targets use.
func fuzzKeys(t testing.TB) (server, client secure.KeyPair) {
	return mustKeyPair(t, docServerSecret), mustKeyPair(t, docClientSecret)
}

func newKeyPair(t testing.TB) secure.KeyPair {
	t.Helper()
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// checkGoroutines checks, once the test and its cleanups are done, that
// the goroutines it started have ended.
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, base) })
}
