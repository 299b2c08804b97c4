package consulapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hydra-net/hydra/registry"
)

// Registrar is where the agent puts the services registered over HTTP:
// registry.Local (entries owned by the node, with no heartbeats: the
// agent's TTL checks decide when they leave).
type Registrar interface {
	Register(ctx context.Context, svc registry.Service) (string, error)
	Update(ctx context.Context, instance string, svc registry.Service) error
	Deregister(ctx context.Context, instance string) error
}

// Sentinel errors of the agent's operations; the handlers map them to
// Consul's status codes.
var (
	ErrUnknownService = errors.New("unknown service ID")
	ErrUnknownCheck   = errors.New("unknown check ID")
	ErrLimit          = errors.New("too many services")
	//lint:ignore ST1005 Consul's own text, which its clients show
	ErrPermission = errors.New("Permission denied")
)

// checkState is one TTL check of an agent service.
type checkState struct {
	id, name, notes string
	ttl, deregAfter time.Duration
	status, output  string
	ttlTimer        *time.Timer
	deregTimer      *time.Timer
}

// owned is a service registered over HTTP.
type owned struct {
	reg      Registration
	svc      registry.Service
	instance string // "" while withdrawn (its check is critical)
	check    *checkState
	owner    string // the client identity that registered it
}

func (o *owned) visible() bool { return o.check == nil || o.check.status != StatusCritical }

// agent holds the services registered over HTTP and their checks. Its
// generation counters join the catalog's index in X-Consul-Index: a check
// that changes state is a change too.
type agent struct {
	local Registrar
	log   *slog.Logger
	max   int

	mu         sync.RWMutex
	byID       map[string]*owned
	byInstance map[string]*owned
	checks     map[string]*owned // by check id
	gen        uint64
	nameGen    map[string]uint64
	changed    chan struct{}
	closed     bool
}

func newAgent(local Registrar, log *slog.Logger, max int) *agent {
	return &agent{local: local, log: log, max: max, byID: map[string]*owned{}, byInstance: map[string]*owned{},
		checks: map[string]*owned{}, nameGen: map[string]uint64{}, changed: make(chan struct{})}
}

// opCtx bounds one registry call (it only waits for the registry's loop).
func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// bump records a change of name's services (locked).
func (a *agent) bump(names ...string) {
	a.gen++
	for _, n := range names {
		a.nameGen[n] = a.gen
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// state returns the agent's generation (of name, or of everything when
// name is "") and a channel closed at its next change.
func (a *agent) state(name string) (gen, all uint64, changed <-chan struct{}) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	gen = a.gen
	if name != "" {
		gen = a.nameGen[name]
	}
	return gen, a.gen, a.changed
}

func mayChange(o *owned, who string) bool { return o.owner == who || who == Loopback }

// register adds or replaces the service r.ID.
func (a *agent) register(r Registration, host, who string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return registry.ErrClosed
	}
	old := a.byID[r.ID]
	if old != nil && !mayChange(old, who) {
		return fmt.Errorf("%w: service %q was registered by another client", ErrPermission, r.ID)
	}
	if old == nil && len(a.byID) >= a.max {
		return fmt.Errorf("%w: this agent holds %d services registered over HTTP, its limit", ErrLimit, a.max)
	}
	if r.Check != nil {
		if o := a.checks[r.Check.CheckID]; o != nil && o != old {
			return fmt.Errorf("%w: check %q belongs to service %q", ErrDecode, r.Check.CheckID, o.reg.ID)
		}
	}
	o := &owned{reg: r, svc: serviceOf(r, host), owner: who}
	if old != nil {
		o.owner = old.owner
	}
	if r.Check != nil {
		c := &checkState{id: r.Check.CheckID, name: r.Check.Name, notes: r.Check.Notes, ttl: r.Check.TTL,
			deregAfter: r.Check.DeregisterAfter, status: r.Check.Status}
		if c.status == "" {
			c.status = StatusCritical // Consul's: a TTL check is critical until its first update
		}
		if old != nil && old.check != nil && old.check.id == c.id && r.Check.Status == "" {
			c.status, c.output = old.check.status, old.check.output // re-registering keeps the state
		}
		o.check = c
	}
	ctx, cancel := opCtx()
	defer cancel()
	// Into the registry first: a refused service (bad host, limit) leaves
	// the old one as it was.
	switch {
	case old != nil && old.instance != "" && o.visible() && old.svc.Name == o.svc.Name:
		if err := a.local.Update(ctx, old.instance, o.svc); err != nil {
			return err
		}
		o.instance = old.instance
	case o.visible():
		inst, err := a.local.Register(ctx, o.svc)
		if err != nil {
			return err
		}
		o.instance = inst
		if old != nil && old.instance != "" {
			a.withdraw(ctx, old)
		}
	default:
		if old != nil && old.instance != "" {
			a.withdraw(ctx, old)
		}
	}
	if old != nil {
		old.stopTimers()
		a.forget(old)
	}
	a.byID[r.ID] = o
	if o.instance != "" {
		a.byInstance[o.instance] = o
	}
	if o.check != nil {
		a.checks[o.check.id] = o
		a.armTTL(o)
		a.armDereg(o)
	}
	if old != nil && old.svc.Name != o.svc.Name {
		a.bump(old.svc.Name, o.svc.Name)
	} else {
		a.bump(o.svc.Name)
	}
	return nil
}

func (a *agent) forget(o *owned) {
	delete(a.byID, o.reg.ID)
	if o.instance != "" && a.byInstance[o.instance] == o {
		delete(a.byInstance, o.instance)
	}
	if o.check != nil && a.checks[o.check.id] == o {
		delete(a.checks, o.check.id)
	}
}

func (o *owned) stopTimers() {
	if c := o.check; c != nil {
		if c.ttlTimer != nil {
			c.ttlTimer.Stop()
		}
		if c.deregTimer != nil {
			c.deregTimer.Stop()
		}
	}
}

// withdraw takes o's entry out of the registry (locked).
func (a *agent) withdraw(ctx context.Context, o *owned) {
	if err := a.local.Deregister(ctx, o.instance); err != nil && !errors.Is(err, registry.ErrNotFound) {
		a.log.Warn("consul: withdrawing a service from the registry", "service", o.reg.ID, "err", err)
	}
	if a.byInstance[o.instance] == o {
		delete(a.byInstance, o.instance)
	}
	o.instance = ""
}

// publish puts a withdrawn o back into the registry (locked).
func (a *agent) publish(ctx context.Context, o *owned) error {
	inst, err := a.local.Register(ctx, o.svc)
	if err != nil {
		return err
	}
	o.instance = inst
	a.byInstance[inst] = o
	return nil
}

// armTTL (re)starts o's TTL: when it lapses without an update the check
// turns critical (locked).
func (a *agent) armTTL(o *owned) {
	c := o.check
	if c.ttlTimer != nil {
		c.ttlTimer.Stop()
	}
	c.ttlTimer = time.AfterFunc(c.ttl, func() { a.expire(o, c) })
}

// armDereg starts or stops DeregisterCriticalServiceAfter (locked).
func (a *agent) armDereg(o *owned) {
	c := o.check
	if c.deregAfter <= 0 {
		return
	}
	if c.status != StatusCritical {
		if c.deregTimer != nil {
			c.deregTimer.Stop()
			c.deregTimer = nil
		}
		return
	}
	if c.deregTimer == nil {
		c.deregTimer = time.AfterFunc(c.deregAfter, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.byID[o.reg.ID] != o || o.check != c || c.status != StatusCritical || a.closed {
				return
			}
			a.log.Info("consul: service deregistered after being critical for DeregisterCriticalServiceAfter",
				"service", o.reg.ID, "after", c.deregAfter)
			a.remove(o)
		})
	}
}

func (a *agent) expire(o *owned, c *checkState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byID[o.reg.ID] != o || o.check != c || a.closed {
		return // replaced or removed since
	}
	a.setStatus(o, StatusCritical, fmt.Sprintf("TTL expired (last update more than %v ago)", c.ttl), false)
}

// update sets a check's status, as check/pass|warn|fail|update do.
func (a *agent) update(checkID, status, output, who string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.checks[checkID]
	if o == nil {
		return fmt.Errorf("%w %q: give the check ID (\"service:<service ID>\" by default), not its name", ErrUnknownCheck, checkID)
	}
	if !mayChange(o, who) {
		return fmt.Errorf("%w: check %q was registered by another client", ErrPermission, checkID)
	}
	return a.setStatus(o, status, output, true)
}

// setStatus (locked); renew restarts the TTL (an update; not an expiry).
func (a *agent) setStatus(o *owned, status, output string, renew bool) error {
	c := o.check
	if renew {
		a.armTTL(o)
	}
	if c.status == status && c.output == output {
		return nil // a heartbeat: nothing changes, no blocking query wakes
	}
	ctx, cancel := opCtx()
	defer cancel()
	wasVisible := o.visible()
	c.status, c.output = status, output
	switch {
	case wasVisible && !o.visible():
		a.withdraw(ctx, o)
	case !wasVisible && o.visible():
		if err := a.publish(ctx, o); err != nil {
			c.status = StatusCritical
			return err
		}
	}
	a.armDereg(o)
	a.bump(o.svc.Name)
	return nil
}

// deregister removes service id.
func (a *agent) deregister(id, who string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.byID[id]
	if o == nil {
		return fmt.Errorf("%w %q: give the service ID (not its name); services registered over ZMTP are deregistered by their owner", ErrUnknownService, id)
	}
	if !mayChange(o, who) {
		return fmt.Errorf("%w: service %q was registered by another client", ErrPermission, id)
	}
	a.remove(o)
	return nil
}

// remove (locked).
func (a *agent) remove(o *owned) {
	o.stopTimers()
	if o.instance != "" {
		ctx, cancel := opCtx()
		a.withdraw(ctx, o)
		cancel()
	}
	a.forget(o)
	a.bump(o.svc.Name)
}

// ownedState is what the handlers show of one agent service.
type ownedState struct {
	id       string
	svc      registry.Service
	instance string
	check    *checkState // a copy; nil: none
}

func (o *owned) state() ownedState {
	s := ownedState{id: o.reg.ID, svc: o.svc, instance: o.instance}
	if o.check != nil {
		c := *o.check
		c.ttlTimer, c.deregTimer = nil, nil
		s.check = &c
	}
	return s
}

// byInst returns the agent's record of a registry instance, if it is one
// of its services.
func (a *agent) byInst(instance string) (ownedState, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	o := a.byInstance[instance]
	if o == nil {
		return ownedState{}, false
	}
	return o.state(), true
}

// withdrawn returns the agent's critical services (not in the registry),
// of name or all ("").
func (a *agent) withdrawn(name string) []ownedState {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []ownedState
	for _, o := range a.byID {
		if o.instance == "" && (name == "" || o.svc.Name == name) {
			out = append(out, o.state())
		}
	}
	return out
}

// close stops the timers; the registry drops the entries itself when it
// stops.
func (a *agent) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, o := range a.byID {
		o.stopTimers()
	}
}
