package join

import (
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"

	"github.com/hydra-net/hydra/secure"
)

// Signed records (PROTOCOL.md, "Join", "Signed records"). With a Signer a
// server signs what its origin asserts: each change (SignChange), each
// part of its snapshot (SignSnap) and each beat (SignBeat). What is signed
// is not the JSON but a canonical encoding of the fields (a domain string,
// then each field, strings and bytes length-prefixed), so a relay passes a
// record on with its fields as received (an entry's JSON byte for byte)
// and the receiver checks it whatever the relay's encoder did to the
// message around it.

// Domain strings: a signature of one kind of record is no signature of
// another.
const (
	domChange = "hydra join change v1\x00"
	domSnap   = "hydra join snap v1\x00"
	domBeat   = "hydra join beat v1\x00"
)

// maxAhead is how far past this server's clock a seq or beat may be:
// further is implausible (refused), so no value a peer sends, 2^64-1
// included, can push an origin's counters beyond reach of its later
// records or this server's own clock into overflow. Clocks of a fleet
// must agree within it.
const maxAhead = 10 * time.Minute

// plausible reports whether v, a seq or beat (µs of the origins' hybrid
// clocks), is not implausibly far ahead of now.
func plausible(v uint64, now time.Time) bool {
	return v <= uint64(now.UnixMicro())+uint64(maxAhead/time.Microsecond)
}

var originEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

// OriginID is the origin id of the server whose signing key is k: the key
// in lower-case base32, 52 characters. With signing on, a server's id
// (registry.Config.ServerID) is this: an origin id names exactly one key,
// so no key can sign for an origin other than its own, nor mint new ones.
func OriginID(k secure.SignPublicKey) string {
	return strings.ToLower(originEnc.EncodeToString(k[:]))
}

// OriginKey is the signing key an origin id names; false if it names none.
func OriginKey(id string) (secure.SignPublicKey, bool) {
	var k secure.SignPublicKey
	if len(id) != originEnc.EncodedLen(len(k)) {
		return k, false
	}
	b, err := originEnc.DecodeString(strings.ToUpper(id))
	if err != nil || len(b) != len(k) {
		return k, false
	}
	copy(k[:], b)
	return k, OriginID(k) == id // one spelling per key
}

func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// changeSigned is what the signature of c covers.
func changeSigned(b []byte, c *Change) []byte {
	b = append(b, domChange...)
	b = appendLP(b, c.Origin)
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	b = binary.BigEndian.AppendUint64(b, c.Prev)
	b = appendLP(b, string(c.Op))
	b = appendLP(b, c.Instance)
	return appendLP(b, string(c.Entry))
}

// snapSigned is what the signature of a snapshot part covers (not its
// beat and age).
func snapSigned(b []byte, m *Snap) []byte {
	b = append(b, domSnap...)
	b = appendLP(b, m.Origin)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Part))
	if m.More {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		b = appendLP(b, string(e))
	}
	return b
}

// beatSigned is what the signature of a beat covers.
func beatSigned(b []byte, origin string, beat uint64) []byte {
	b = append(b, domBeat...)
	b = appendLP(b, origin)
	return binary.BigEndian.AppendUint64(b, beat)
}

// SignChange sets c.Sig: s's signature of c as its origin's record.
func SignChange(s *secure.Signer, c *Change) { c.Sig = s.Sign(changeSigned(nil, c)) }

// SignSnap sets m.Sig: s's signature of the snapshot part (origin, seq,
// part, more, entries).
func SignSnap(s *secure.Signer, m *Snap) { m.Sig = s.Sign(snapSigned(nil, m)) }

// SignBeat is s's signature of origin's beat.
func SignBeat(s *secure.Signer, origin string, beat uint64) []byte {
	return s.Sign(beatSigned(nil, origin, beat))
}

// signed reports whether this server signs and checks records.
func (j *Join) signed() bool { return j.cfg.Signer != nil }

// trusted reports whether records of origin id may be taken: always when
// nothing is signed; with signing, when id names a key TrustOrigin
// accepts (this server's own key always).
func (j *Join) trusted(id string) (secure.SignPublicKey, bool) {
	if !j.signed() {
		return secure.SignPublicKey{}, true
	}
	if id == j.self {
		return j.cfg.Signer.Public, true
	}
	k, ok := OriginKey(id)
	return k, ok && j.cfg.TrustOrigin(k)
}

// verify reports whether sig is origin id's signature of msg, from a
// trusted origin; true when nothing is signed.
func (j *Join) verify(id string, msg, sig []byte) bool {
	if !j.signed() {
		return true
	}
	k, ok := j.trusted(id)
	return ok && k.Verify(msg, sig)
}

func (j *Join) verifyChange(c *Change) bool {
	if !j.signed() {
		return true
	}
	j.sigBuf = changeSigned(j.sigBuf[:0], c)
	return j.verify(c.Origin, j.sigBuf, c.Sig)
}

func (j *Join) verifySnap(m *Snap) bool {
	if !j.signed() {
		return true
	}
	j.sigBuf = snapSigned(j.sigBuf[:0], m)
	return j.verify(m.Origin, j.sigBuf, m.Sig)
}

func (j *Join) verifyBeat(id string, beat uint64, sig []byte) bool {
	if !j.signed() {
		return true
	}
	j.sigBuf = beatSigned(j.sigBuf[:0], id, beat)
	return j.verify(id, j.sigBuf, sig)
}

// badRecord counts a record that is not its origin's (a bad signature, an
// untrusted origin) and warns once a minute per peer.
func (j *Join) badRecord(l *link, what, origin string) {
	j.stats.refusedIn.Add(1)
	j.warnEvery("refused:"+l.peer, "join: a peer sent a record not signed by its origin's trusted key; ignoring it",
		"peer", l.peer, "link", l.name(), "record", what, "origin", origin)
}
