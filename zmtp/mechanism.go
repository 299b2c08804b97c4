package zmtp

import (
	"crypto/subtle"
	"fmt"
)

// Mechanism is one side of a ZMTP security mechanism on one connection. A
// socket makes a fresh Mechanism for every connection through
// Config.Security.
type Mechanism interface {
	// Name is the mechanism name sent in the greeting: "NULL", "PLAIN", "CURVE".
	Name() string
	// AsServer is the greeting's as-server bit.
	AsServer() bool
	// Handshake runs the mechanism's command exchange after the greetings,
	// sending local (the socket's metadata) and returning what it learned of
	// the peer. It runs under the socket's handshake deadline.
	Handshake(c HandshakeConn, local Metadata) (Session, error)
}

// HandshakeConn is what a Mechanism handshakes over: whole commands, read
// and written synchronously, before any message flows.
type HandshakeConn interface {
	ReadCommand() (Command, error)
	WriteCommand(name string, body []byte) error
	// Peer is the greeting the peer sent.
	Peer() Greeting
}

// Session is the outcome of a successful handshake.
type Session struct {
	Peer   Metadata      // the peer's READY (or INITIATE) metadata
	UserID string        // the authenticated user or key, "" for NULL
	Cipher MessageCipher // nil: frames travel as they are
}

// MessageCipher protects frames after the handshake (CURVE's MESSAGE
// command). One writer goroutine calls Seal and one reader goroutine calls
// Open, so implementations need no locking between the two directions. A
// MessageCipher that also has a method Wipe() gets it called once, when
// the connection has ended after its last Seal and Open, to zero its keys.
type MessageCipher interface {
	// Seal appends to dst the wire frame that carries one frame with the
	// given flags (FlagMore, FlagCommand) and body.
	Seal(dst []byte, flags byte, body []byte) ([]byte, error)
	// Open decrypts the body of a frame received after the handshake and
	// returns the inner frame's flags and body. The body may alias b:
	// Open may decrypt in place, since b is memory of its own (zmtp never
	// reads b again after Open nor reuses its memory for later frames).
	// Every frame goes through Open whatever its own flags: libzmq sends
	// CURVE's MESSAGE as a data frame without the COMMAND bit, though
	// spec 26 calls it a command. A frame that is not a sealed message is
	// an error, which ends the connection.
	Open(b []byte) (flags byte, body []byte, err error)
}

// Null returns the NULL mechanism: no authentication, no encryption.
func Null() Mechanism { return nullMech{} }

type nullMech struct{}

func (nullMech) Name() string   { return "NULL" }
func (nullMech) AsServer() bool { return false }
func (nullMech) Handshake(c HandshakeConn, local Metadata) (Session, error) {
	if err := c.WriteCommand(CmdReady, AppendMetadata(nil, local)); err != nil {
		return Session{}, err
	}
	cmd, err := c.ReadCommand()
	if err != nil {
		return Session{}, err
	}
	peer, err := readyMetadata(cmd)
	return Session{Peer: peer}, err
}

// readyMetadata accepts a READY (returning its metadata) or an ERROR
// (returning a *PeerError); anything else is a protocol error.
func readyMetadata(cmd Command) (Metadata, error) {
	switch cmd.Name {
	case CmdReady:
		return ParseMetadata(cmd.Body)
	case CmdError:
		reason, err := ParseError(cmd.Body)
		if err != nil {
			return nil, err
		}
		return nil, &PeerError{Reason: reason}
	}
	return nil, fmt.Errorf("%w: %q during handshake, want READY", ErrUnexpected, cmd.Name)
}

// PlainClient returns the client side of the PLAIN mechanism (spec 24):
// the user name and password travel in clear text, for trusted networks.
func PlainClient(user, password string) func() Mechanism {
	return func() Mechanism { return &plainClient{user: user, pass: password} }
}

// PlainServer returns the server side of PLAIN; authenticate decides
// whether a user name and password are accepted.
func PlainServer(authenticate func(user, password string) bool) func() Mechanism {
	return func() Mechanism { return &plainServer{auth: authenticate} }
}

// PlainCredentials is an authenticate function for PlainServer that accepts
// exactly the given user and password (compared in constant time).
func PlainCredentials(user, password string) func(string, string) bool {
	return func(u, p string) bool {
		uok := subtle.ConstantTimeCompare([]byte(u), []byte(user))
		pok := subtle.ConstantTimeCompare([]byte(p), []byte(password))
		return uok&pok == 1
	}
}

type plainClient struct{ user, pass string }

func (*plainClient) Name() string   { return "PLAIN" }
func (*plainClient) AsServer() bool { return false }
func (m *plainClient) Handshake(c HandshakeConn, local Metadata) (Session, error) {
	if len(m.user) > 255 || len(m.pass) > 255 {
		return Session{}, fmt.Errorf("%w: PLAIN user name or password over 255 bytes", ErrHandshake)
	}
	hello := append([]byte{byte(len(m.user))}, m.user...)
	hello = append(append(hello, byte(len(m.pass))), m.pass...)
	if err := c.WriteCommand("HELLO", hello); err != nil {
		return Session{}, err
	}
	cmd, err := c.ReadCommand()
	if err != nil {
		return Session{}, err
	}
	switch cmd.Name {
	case "WELCOME":
	case CmdError:
		_, err := readyMetadata(cmd)
		return Session{}, err
	default:
		return Session{}, fmt.Errorf("%w: %q during PLAIN handshake, want WELCOME", ErrUnexpected, cmd.Name)
	}
	if err := c.WriteCommand("INITIATE", AppendMetadata(nil, local)); err != nil {
		return Session{}, err
	}
	if cmd, err = c.ReadCommand(); err != nil {
		return Session{}, err
	}
	peer, err := readyMetadata(cmd)
	return Session{Peer: peer}, err
}

type plainServer struct {
	auth func(user, pass string) bool
}

func (*plainServer) Name() string   { return "PLAIN" }
func (*plainServer) AsServer() bool { return true }
func (m *plainServer) Handshake(c HandshakeConn, local Metadata) (Session, error) {
	cmd, err := c.ReadCommand()
	if err != nil {
		return Session{}, err
	}
	if cmd.Name != "HELLO" {
		return Session{}, fmt.Errorf("%w: %q during PLAIN handshake, want HELLO", ErrUnexpected, cmd.Name)
	}
	user, pass, ok := parsePlainHello(cmd.Body)
	if !ok {
		return Session{}, fmt.Errorf("%w: PLAIN HELLO body", ErrBadCommand)
	}
	if m.auth == nil || !m.auth(user, pass) {
		// Tell the client why, as libzmq's ZAP path does, then fail.
		_ = c.WriteCommand(CmdError, AppendErrorBody(nil, "Invalid username or password"))
		return Session{}, fmt.Errorf("%w: PLAIN credentials refused for user %q", ErrHandshake, user)
	}
	if err := c.WriteCommand("WELCOME", nil); err != nil {
		return Session{}, err
	}
	if cmd, err = c.ReadCommand(); err != nil {
		return Session{}, err
	}
	if cmd.Name != "INITIATE" {
		return Session{}, fmt.Errorf("%w: %q during PLAIN handshake, want INITIATE", ErrUnexpected, cmd.Name)
	}
	peer, err := ParseMetadata(cmd.Body)
	if err != nil {
		return Session{}, err
	}
	if err := c.WriteCommand(CmdReady, AppendMetadata(nil, local)); err != nil {
		return Session{}, err
	}
	return Session{Peer: peer, UserID: user}, nil
}

func parsePlainHello(b []byte) (user, pass string, ok bool) {
	if len(b) < 1 || int(b[0]) > len(b)-1 {
		return "", "", false
	}
	ul := int(b[0])
	user, b = string(b[1:1+ul]), b[1+ul:]
	if len(b) < 1 || int(b[0]) != len(b)-1 {
		return "", "", false
	}
	return user, string(b[1:]), true
}
