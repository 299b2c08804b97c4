package secure

import (
	"os"
	"os/exec"
	"testing"
)

// The example key pairs of libzmq's zmq_curve(7) manual page, used as
// known answers and as fixed test identities.
const (
	docClientPublic = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
	docClientSecret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
	docServerPublic = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
	docServerSecret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
)

func mustKeyPair(t testing.TB, secret string) KeyPair {
	t.Helper()
	s, err := ParseSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := KeyPairFromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func newKeyPair(t testing.TB) KeyPair {
	t.Helper()
	kp, err := GenerateKeyPair()
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
