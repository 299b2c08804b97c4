package tunnel

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// ClientRegistry is a Registry over a registry.Client talking to the
// server on this machine over ZMTP: what tunnels use until
// registry.Server.Local lands, when this file goes away. Its entries live
// by the client's heartbeats; the tunnel deregisters them itself (at the
// end of a peer's grace or of Run), as it does with Local's.
type ClientRegistry struct {
	cl *registry.Client

	mu   sync.Mutex
	regs map[string]*registry.Registration // by instance
}

// clientEntryTTL is the TTL of proxy entries registered through a
// ClientRegistry: short, so the entries of a process that died without
// deregistering them soon expire.
const clientEntryTTL = 10 * time.Second

// NewClientRegistry connects a client to the server at cfg.Endpoint (a
// wildcard bind address such as tcp://0.0.0.0:8420 is dialled on
// loopback). Close closes it.
func NewClientRegistry(cfg registry.ClientConfig) (*ClientRegistry, error) {
	cfg.Endpoint = loopbackEndpoint(cfg.Endpoint)
	cl, err := registry.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("tunnel: client of the local server: %w", err)
	}
	return &ClientRegistry{cl: cl, regs: map[string]*registry.Registration{}}, nil
}

// Close closes the client; entries not deregistered expire on the server.
func (r *ClientRegistry) Close() error { return r.cl.Close() }

// Register registers svc and keeps it alive until Deregister.
func (r *ClientRegistry) Register(ctx context.Context, svc registry.Service) (string, error) {
	if svc.TTL == 0 {
		svc.TTL = clientEntryTTL
	}
	reg, err := r.cl.Register(ctx, svc)
	if err != nil {
		return "", err
	}
	inst := reg.Instance()
	r.mu.Lock()
	r.regs[inst] = reg
	r.mu.Unlock()
	return inst, nil
}

func (r *ClientRegistry) registration(instance string) (*registry.Registration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := r.regs[instance]
	if reg == nil {
		return nil, fmt.Errorf("%w: instance %q not registered here", registry.ErrNotFound, instance)
	}
	return reg, nil
}

// Update replaces the entry's service.
func (r *ClientRegistry) Update(ctx context.Context, instance string, svc registry.Service) error {
	reg, err := r.registration(instance)
	if err != nil {
		return err
	}
	if svc.TTL == 0 {
		svc.TTL = clientEntryTTL
	}
	return reg.Update(ctx, svc)
}

// Deregister removes the entry and stops its heartbeats.
func (r *ClientRegistry) Deregister(ctx context.Context, instance string) error {
	reg, err := r.registration(instance)
	if err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.regs, instance)
	r.mu.Unlock()
	return reg.Deregister(ctx)
}

// Watch watches every name.
func (r *ClientRegistry) Watch(ctx context.Context) (<-chan registry.Event, error) {
	return r.cl.Watch(ctx, "")
}

// loopbackEndpoint turns a wildcard bind address into one a client can dial.
func loopbackEndpoint(ep string) string {
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return ep
	}
	h, p, err := net.SplitHostPort(rest)
	if err != nil {
		return ep
	}
	if ip := net.ParseIP(h); h == "*" || h == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			h = "::1"
		} else {
			h = "127.0.0.1"
		}
	}
	return "tcp://" + net.JoinHostPort(h, p)
}
