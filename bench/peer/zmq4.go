package main

import (
	"context"
	"fmt"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/hydra-net/hydra/bench"
)

// zmq4Socket adapts a go-zeromq/zmq4 socket.
type zmq4Socket struct {
	s    zmq4.Socket
	role string
}

// openZMQ4 opens a zmq4 socket. zmq4 has no high-water marks for these
// socket types (its sends are synchronous writes) and no message size limit,
// so hwm and size are unused.
func openZMQ4(role, endpoint string, _, _ int) (socket, error) {
	ctx := context.Background()
	// Dial is synchronous in zmq4: retry often enough that a binder still
	// starting up costs little, for up to ~10 s.
	opts := []zmq4.Option{
		zmq4.WithDialerRetry(20 * time.Millisecond),
		zmq4.WithDialerMaxRetries(500),
	}
	var s zmq4.Socket
	switch role {
	case bench.RolePush:
		s = zmq4.NewPush(ctx, opts...)
	case bench.RolePull:
		s = zmq4.NewPull(ctx, opts...)
	case bench.RoleReq:
		s = zmq4.NewReq(ctx, opts...)
	case bench.RoleRep:
		s = zmq4.NewRep(ctx, opts...)
	default:
		return nil, fmt.Errorf("unknown role %q", role)
	}
	var err error
	if binds(role) {
		err = s.Listen(endpoint)
	} else {
		err = s.Dial(endpoint)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return &zmq4Socket{s: s, role: role}, nil
}

func (z *zmq4Socket) send(b []byte) error {
	// zmq4 writes the frame before Send returns, so b may be reused.
	return z.s.Send(zmq4.NewMsg(b))
}

func (z *zmq4Socket) recv() ([]byte, error) {
	m, err := z.s.Recv()
	if err != nil {
		return nil, err
	}
	if len(m.Frames) != 1 {
		return nil, fmt.Errorf("message of %d frames, want 1", len(m.Frames))
	}
	return m.Frames[0], nil
}

// repCloseDelay works around zmq4 v0.17 dropping the last reply when a REP
// socket closes right after sending it (it has no linger).
const repCloseDelay = 200 * time.Millisecond

func (z *zmq4Socket) close() error {
	if z.role == bench.RoleRep {
		time.Sleep(repCloseDelay)
	}
	return z.s.Close()
}
