package main

import (
	"fmt"
	"time"

	"github.com/hydra-net/hydra/bench"
	"github.com/hydra-net/hydra/zmtp"
)

// hydraSocket adapts a hydra zmtp socket.
type hydraSocket struct{ s *zmtp.Socket }

// hydraLinger bounds how long Close may spend flushing a sender's queue; the
// harness gives up on a peer well before a healthy flush would need it.
const hydraLinger = 30 * time.Second

func openHydra(role, endpoint string, hwm, size int) (socket, error) {
	var t zmtp.SocketType
	switch role {
	case bench.RolePush:
		t = zmtp.PUSH
	case bench.RolePull:
		t = zmtp.PULL
	case bench.RoleReq:
		t = zmtp.REQ
	case bench.RoleRep:
		t = zmtp.REP
	default:
		return nil, fmt.Errorf("unknown role %q", role)
	}
	s, err := zmtp.NewSocket(t, zmtp.Config{
		SendHWM: hwm,
		RecvHWM: hwm,
		Linger:  hydraLinger,
		// The default limit (8 MiB) unless -sizes asks for more.
		MaxMsgSize: max(8<<20, int64(size)+1024),
	})
	if err != nil {
		return nil, err
	}
	if binds(role) {
		err = s.Bind(endpoint)
	} else {
		err = s.Connect(endpoint)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return hydraSocket{s}, nil
}

// send copies b into the socket's queue; b may be reused on return.
func (h hydraSocket) send(b []byte) error { return h.s.Send(b) }

func (h hydraSocket) recv() ([]byte, error) {
	m, err := h.s.Recv()
	if err != nil {
		return nil, err
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("message of %d frames, want 1", len(m))
	}
	return m[0], nil
}

func (h hydraSocket) close() error { return h.s.Close() }
