package curve

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/zmtp"

	"github.com/hydra-net/hydra/secure"
)

// The example key pairs of libzmq's zmq_curve(7) manual page, used as
// known answers and as fixed test identities.
const (
	docClientPublic = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
	docClientSecret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
	docServerPublic = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
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

func newKeyPair(t testing.TB) secure.KeyPair {
	t.Helper()
	kp, err := secure.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// findPython returns an interpreter that imports zmq with CURVE support,
// preferring Debian's /usr/bin/python3. Without one the test is skipped,
// except under CI=true where it fails.
func findPython(t testing.TB) string {
	t.Helper()
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		out, err := exec.Command(p, "-c", "import zmq,sys; sys.stdout.write(str(zmq.has('curve')))").Output()
		if err == nil && string(out) == "True" {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no python3 with pyzmq (CURVE) found; install python3-zmq")
	}
	t.Skip("no python3 with pyzmq (CURVE) found; install Debian's python3-zmq to run libzmq interop tests")
	return ""
}

func newSocket(t testing.TB, typ zmtp.SocketType, opt zmtp.Config) *zmtp.Socket {
	t.Helper()
	s, err := zmtp.NewSocket(typ, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func recvTimeout(t testing.TB, s *zmtp.Socket, d time.Duration) ([][]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.RecvContext(ctx)
}

// checkGoroutines checks, once the test and its cleanups are done, that
// the goroutines it started have ended.
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() { testutil.CheckGoroutines(t, base) })
}
