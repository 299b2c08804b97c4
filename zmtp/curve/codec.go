package curve

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hydra-net/hydra/secure"
)

// The CURVE commands of rfc.zeromq.org spec 26 (CurveZMQ over ZMTP). The
// sizes the spec gives count the whole command body, name included:
// HELLO 200 bytes, WELCOME 168, INITIATE at least 257, READY at least 30,
// MESSAGE at least 33. Each parseX(b) returns the command and the bytes it
// consumed (all of b: a command body is delimited by its frame), and the
// command's append(dst) encodes it again. The parsers take the body after
// the name (what zmtp.Command.Body holds), except parseMessage, which
// takes the whole command frame body as MessageCipher.Open receives it. Fixed-size
// commands of any other length are refused, like wireguard-go does, and
// every length is checked before use. Short input returns
// io.ErrUnexpectedEOF wrapped in ErrCommand.
const (
	cmdHello    = "HELLO"
	cmdWelcome  = "WELCOME"
	cmdInitiate = "INITIATE"
	cmdMessage  = "MESSAGE"

	helloBody       = 2 + 72 + 32 + 8 + 80 // 194: version, padding, C', nonce, box
	welcomeBody     = 16 + 144             // 160: nonce, box [S' + cookie]
	cookieSize      = 16 + 80              // nonce, secretbox [C' + s']
	initiateMinBody = cookieSize + 8 + 144 // 248: cookie, nonce, box [C + vouch + metadata]
	readyMinBody    = 8 + 16               // 24: nonce, box [metadata]
	messageHeader   = 1 + len(cmdMessage) + 8
	messageMin      = messageHeader + 16 + 1 // 33: name, nonce, box [flags + data]

	vouchSize        = 16 + 80 // nonce, box [C' + S]
	initiatePlainMin = 32 + vouchSize

	// Nonce prefixes (spec 26).
	prefixHello    = "CurveZMQHELLO---"
	prefixWelcome  = "WELCOME-"
	prefixCookie   = "COOKIE--"
	prefixInitiate = "CurveZMQINITIATE"
	prefixVouch    = "VOUCH---"
	prefixReady    = "CurveZMQREADY---"
	prefixMsgC     = "CurveZMQMESSAGEC" // client to server
	prefixMsgS     = "CurveZMQMESSAGES" // server to client

	// Inner flags of a MESSAGE: libzmq transports its msg_t flags more (1)
	// and command (2).
	innerMore    = 0x01
	innerCommand = 0x02
)

func shortErr(what string, n, want int) error {
	return fmt.Errorf("%w: %s body of %d bytes, want %d: %w", ErrCommand, what, n, want, io.ErrUnexpectedEOF)
}

// helloCmd is a HELLO: the client's short-term key C' and a box of 64
// zero bytes from C' to the server's long-term key S, proving the client
// knows S.
type helloCmd struct {
	Major, Minor byte
	Padding      [72]byte // zeros from every known client; not checked, as in libzmq
	ClientShort  secure.PublicKey
	Nonce        uint64
	Box          [80]byte
}

// parseHello parses a HELLO body, which is all of b.
func parseHello(b []byte) (helloCmd, int, error) {
	var h helloCmd
	if len(b) < helloBody {
		return h, 0, shortErr(cmdHello, len(b), helloBody)
	}
	if len(b) != helloBody {
		return h, 0, fmt.Errorf("%w: HELLO body of %d bytes, want exactly %d", ErrCommand, len(b), helloBody)
	}
	h.Major, h.Minor = b[0], b[1]
	copy(h.Padding[:], b[2:74])
	copy(h.ClientShort[:], b[74:106])
	h.Nonce = binary.BigEndian.Uint64(b[106:114])
	copy(h.Box[:], b[114:194])
	return h, helloBody, nil
}

func (h helloCmd) append(dst []byte) []byte {
	dst = append(dst, h.Major, h.Minor)
	dst = append(dst, h.Padding[:]...)
	dst = append(dst, h.ClientShort[:]...)
	dst = binary.BigEndian.AppendUint64(dst, h.Nonce)
	return append(dst, h.Box[:]...)
}

// welcomeCmd is a WELCOME: a long nonce and a box from S to C' holding
// the server's short-term key S' and the cookie.
type welcomeCmd struct {
	Nonce [16]byte
	Box   [144]byte
}

// parseWelcome parses a WELCOME body, which is all of b.
func parseWelcome(b []byte) (welcomeCmd, int, error) {
	var w welcomeCmd
	if len(b) < welcomeBody {
		return w, 0, shortErr(cmdWelcome, len(b), welcomeBody)
	}
	if len(b) != welcomeBody {
		return w, 0, fmt.Errorf("%w: WELCOME body of %d bytes, want exactly %d", ErrCommand, len(b), welcomeBody)
	}
	copy(w.Nonce[:], b[:16])
	copy(w.Box[:], b[16:])
	return w, welcomeBody, nil
}

func (w welcomeCmd) append(dst []byte) []byte {
	return append(append(dst, w.Nonce[:]...), w.Box[:]...)
}

// initiateCmd is an INITIATE: the cookie sent back, a short nonce and a
// box from C' to S' holding the client's long-term key C, its vouch and
// its metadata.
type initiateCmd struct {
	Cookie [cookieSize]byte
	Nonce  uint64
	Box    []byte // aliases the parsed input
}

// parseInitiate parses an INITIATE body, which is all of b: the box runs
// to its end.
func parseInitiate(b []byte) (initiateCmd, int, error) {
	var in initiateCmd
	if len(b) < initiateMinBody {
		return in, 0, shortErr(cmdInitiate, len(b), initiateMinBody)
	}
	copy(in.Cookie[:], b[:cookieSize])
	in.Nonce = binary.BigEndian.Uint64(b[cookieSize:])
	in.Box = b[cookieSize+8:]
	return in, len(b), nil
}

func (in initiateCmd) append(dst []byte) []byte {
	dst = append(dst, in.Cookie[:]...)
	dst = binary.BigEndian.AppendUint64(dst, in.Nonce)
	return append(dst, in.Box...)
}

// readyCmd is a READY: a short nonce and a box from S' to C' holding the
// server's metadata.
type readyCmd struct {
	Nonce uint64
	Box   []byte // aliases the parsed input
}

// parseReady parses a READY body, which is all of b: the box runs to its
// end.
func parseReady(b []byte) (readyCmd, int, error) {
	if len(b) < readyMinBody {
		return readyCmd{}, 0, shortErr("READY", len(b), readyMinBody)
	}
	return readyCmd{Nonce: binary.BigEndian.Uint64(b), Box: b[8:]}, len(b), nil
}

func (r readyCmd) append(dst []byte) []byte {
	return append(binary.BigEndian.AppendUint64(dst, r.Nonce), r.Box...)
}

// messageCmd is a MESSAGE: a short nonce and a box holding the inner
// flags and the frame.
type messageCmd struct {
	Nonce uint64
	Box   []byte // aliases the parsed input
}

// parseMessage parses a MESSAGE command frame body ("\x07MESSAGE", nonce,
// box), which is all of b: the box runs to its end.
func parseMessage(b []byte) (messageCmd, int, error) {
	name := b[:min(len(b), 1+len(cmdMessage))]
	if string(name) != messageName[:len(name)] {
		return messageCmd{}, 0, fmt.Errorf("%w: command % x after the CURVE handshake, want MESSAGE", ErrCommand, head(b))
	}
	if len(b) < messageMin {
		return messageCmd{}, 0, shortErr(cmdMessage, len(b), messageMin)
	}
	return messageCmd{Nonce: binary.BigEndian.Uint64(b[1+len(cmdMessage):]), Box: b[messageHeader:]}, len(b), nil
}

func (m messageCmd) append(dst []byte) []byte {
	dst = append(dst, messageName...)
	dst = binary.BigEndian.AppendUint64(dst, m.Nonce)
	return append(dst, m.Box...)
}

// messageName starts every MESSAGE command frame body.
const messageName = "\x07" + cmdMessage

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}
