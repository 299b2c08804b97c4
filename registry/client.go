package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/netaddr"
	"github.com/hydra-net/hydra/zmtp"
)

// DefaultEndpoint is where clients find the registry unless told otherwise.
const DefaultEndpoint = netaddr.DefaultEndpoint

// Defaults of ClientConfig's fields.
const (
	DefaultClientTimeout     = 5 * time.Second
	DefaultReconnectInterval = 250 * time.Millisecond
	DefaultDialTimeout       = 2 * time.Second
	DefaultWatchBuffer       = 4096
)

// ClientConfig configures a Client. The zero value is usable: every field
// says its default, applied when the field is zero.
type ClientConfig struct {
	// Endpoint is the server's ZMTP endpoint. Default DefaultEndpoint.
	Endpoint string
	// Logger receives the client's events. Default: discard.
	Logger *slog.Logger
	// Timeout bounds each request whose context has no deadline.
	// Default 5s.
	Timeout time.Duration
	// Token identifies this client to the server as the owner of its
	// entries, across reconnects and server restarts: 16 to 128 bytes of
	// [A-Za-z0-9_-]. Default: 32 random hex digits.
	Token string
	// HeartbeatInterval is how often the client renews its entries and
	// checks its watches. Default: a third of the shortest TTL among its
	// registrations, and at most the watches' keepalive interval.
	HeartbeatInterval time.Duration
	// ReconnectInterval is the longest wait between attempts to reach a
	// server that went away. Default 250ms.
	ReconnectInterval time.Duration
	// Picker chooses among a name's instances for Pick and Dial.
	// Default RoundRobin().
	Picker Picker
	// DialTimeout bounds each connection attempt of Dial. Default 2s.
	DialTimeout time.Duration
	// WatchBuffer is how many events a watch holds for a slow consumer
	// before it drops them and starts again with a sync event.
	// Default 4096.
	WatchBuffer int
	// Security makes the ZMTP security mechanism (CURVE from package
	// secure). Default: NULL.
	Security func() zmtp.Mechanism
	// FailFast makes a request fail at the first failed attempt to reach
	// the server (refused, no such host, a handshake that failed) with an
	// error wrapping ErrUnreachable, instead of waiting for the server
	// within its timeout: for one-shot tools, where a server that is not
	// there should be said at once. Default false: requests wait for a
	// server that is not up yet.
	FailFast bool
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&c.Timeout, DefaultClientTimeout)
	if c.Token == "" {
		c.Token = randomHex(16)
	}
	setDefault(&c.ReconnectInterval, DefaultReconnectInterval)
	if c.Picker == nil {
		c.Picker = RoundRobin()
	}
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.WatchBuffer, DefaultWatchBuffer)
	return c
}

// Validate reports the first bad field of c (after defaults), by its Go
// field name.
func (c ClientConfig) Validate() error {
	c = c.withDefaults()
	if err := checkToken(c.Token); err != nil {
		return fmt.Errorf("registry: client config: Token: %s", err.Message)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Timeout", int64(c.Timeout)}, {"HeartbeatInterval", int64(c.HeartbeatInterval)},
		{"ReconnectInterval", int64(c.ReconnectInterval)}, {"DialTimeout", int64(c.DialTimeout)},
		{"WatchBuffer", int64(c.WatchBuffer)},
	} {
		if f.v < 0 {
			return fmt.Errorf("registry: client config: %s is negative", f.name)
		}
	}
	return nil
}

// Client is a registry client: it registers services and keeps them alive,
// looks names up, watches them and dials them. It holds one DEALER
// connection, on which requests are pipelined; it reconnects by itself and,
// when the server lost its entries or watches (a restart), registers and
// watches again within one heartbeat interval. Safe for concurrent use.
type Client struct {
	cfg   ClientConfig
	log   *slog.Logger
	sock  *zmtp.Socket
	token string

	nextID atomic.Uint64
	stop   chan struct{}
	wg     sync.WaitGroup
	kick   chan struct{} // the heartbeat schedule changed

	mu      sync.Mutex
	closed  bool
	pending map[uint64]*call
	regs    map[*Registration]struct{}
	watches map[string]*clientWatch // by current server watch id
	allW    map[*clientWatch]struct{}
	ghosts  map[string]bool // instances the server renewed that we do not hold
}

type call struct {
	ch      chan result
	onReply func(status string, body []byte) // runs on the reader goroutine
}

type result struct {
	status string
	body   []byte
	err    error
}

// NewClient returns a client of the server at cfg.Endpoint. It connects in
// the background: requests made before the server is up wait for it (within
// their timeout).
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sock, err := zmtp.NewSocket(zmtp.DEALER, zmtp.Config{
		Logger:               slog.New(quieter{cfg.Logger.Handler()}),
		ReconnectInterval:    min(100*time.Millisecond, cfg.ReconnectInterval),
		ReconnectIntervalMax: cfg.ReconnectInterval,
		// Every request is waited for (Close's DEREGISTER too), so what is
		// still queued at Close is requests whose callers gave up: dropped,
		// rather than delivered late or waited for.
		Linger:            -1,
		HeartbeatInterval: 10 * time.Second,
		MaxMsgSize:        64 << 20,
		Security:          cfg.Security,
	})
	if err != nil {
		return nil, err
	}
	if err := sock.Connect(cfg.Endpoint); err != nil {
		sock.Close()
		return nil, err
	}
	c := &Client{
		cfg: cfg, log: cfg.Logger, sock: sock, token: cfg.Token,
		stop: make(chan struct{}), kick: make(chan struct{}, 1),
		pending: map[uint64]*call{}, regs: map[*Registration]struct{}{},
		watches: map[string]*clientWatch{}, allW: map[*clientWatch]struct{}{}, ghosts: map[string]bool{},
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.heartbeatLoop()
	return c, nil
}

// Token returns the client's token.
func (c *Client) Token() string { return c.token }

// Endpoint returns the server endpoint the client talks to.
func (c *Client) Endpoint() string { return c.cfg.Endpoint }

// Close stops heartbeats, deregisters the client's entries (waiting up to a
// second for the server), ends its watches and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	hasRegs := len(c.regs) > 0
	c.mu.Unlock()
	if hasRegs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Request(ctx, VerbDeregister, map[string]any{"token": c.token})
		cancel()
		if err != nil {
			c.log.Debug("registry: deregister at close", "err", err)
		}
	}
	c.mu.Lock()
	c.closed = true
	for id, p := range c.pending {
		p.ch <- result{err: ErrClosed}
		delete(c.pending, id)
	}
	ws := make([]*clientWatch, 0, len(c.allW))
	for w := range c.allW {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	close(c.stop)
	for _, w := range ws {
		<-w.done
	}
	err := c.sock.Close()
	c.wg.Wait()
	return err
}

// Request sends one request (verb and a body that marshals to a JSON
// object; nil for none) and returns the OK reply's body. An ERR reply is
// returned as an *Error. Without a deadline in ctx, the client's Timeout
// applies.
func (c *Client) Request(ctx context.Context, verb string, body any) (json.RawMessage, error) {
	return c.request(ctx, verb, body, nil)
}

func (c *Client) request(ctx context.Context, verb string, body any, onReply func(string, []byte)) (json.RawMessage, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	obj := []byte(`{}`)
	if body != nil {
		var err error
		if obj, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("registry: %s body: %w", verb, err)
		}
	}
	id := c.nextID.Add(1)
	msg := appendBody(nil, strconv.AppendUint(nil, id, 10), obj)
	cl := &call{ch: make(chan result, 1), onReply: onReply}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[id] = cl
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	connFailed := c.sock.ConnectFailed()
	if c.cfg.FailFast {
		if cerr := c.sock.ConnectError(); cerr != nil {
			return nil, c.unreachable(verb, cerr)
		}
	}
	if err := c.sock.SendContext(ctx, []byte(verb), msg); err != nil {
		if errors.Is(err, zmtp.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("registry: %s: %w", verb, err)
	}
	for {
		select {
		case r := <-cl.ch:
			return c.reply(verb, r)
		case <-connFailed:
			cerr := c.sock.ConnectError()
			if refused(cerr) {
				// The server turned us away (wrong security mechanism or
				// keys): retrying until ctx ends would not help.
				return nil, fmt.Errorf("registry: %s: %s refused the connection: %w", verb, c.cfg.Endpoint, cerr)
			}
			if c.cfg.FailFast && cerr != nil {
				return nil, c.unreachable(verb, cerr)
			}
			connFailed = c.sock.ConnectFailed()
		case <-ctx.Done():
			if cerr := c.sock.ConnectError(); cerr != nil {
				// Not connected: say why rather than only that time ran out.
				return nil, fmt.Errorf("registry: %s: %w: no reply from %s: %w (%w)", verb, ErrUnreachable, c.cfg.Endpoint, ctx.Err(), cerr)
			}
			return nil, fmt.Errorf("registry: %s: no reply from %s: %w", verb, c.cfg.Endpoint, ctx.Err())
		}
	}
}

// unreachable is the error of a FailFast request whose connection attempt
// failed with cerr.
func (c *Client) unreachable(verb string, cerr error) error {
	return fmt.Errorf("registry: %s: %w: %s: %w", verb, ErrUnreachable, c.cfg.Endpoint, cerr)
}

// refused reports whether a connect error is the server turning us away,
// which a later attempt would meet again.
func refused(err error) bool {
	return errors.Is(err, zmtp.ErrMechanism) || errors.Is(err, zmtp.ErrPeerError) || errors.Is(err, zmtp.ErrSocketType)
}

// reply turns a reply into the body of an OK or an *Error.
func (c *Client) reply(verb string, r result) ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.status != StatusOK {
		var e Error
		if err := json.Unmarshal(r.body, &struct {
			Code  *string `json:"code"`
			Error *string `json:"error"`
		}{&e.Code, &e.Message}); err != nil || e.Code == "" {
			return nil, fmt.Errorf("registry: %s: malformed %s reply %q", verb, r.status, r.body)
		}
		return nil, &e
	}
	return r.body, nil
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	for {
		msg, err := c.sock.Recv()
		if err != nil {
			return
		}
		if len(msg) != 2 {
			c.log.Debug("registry: ignoring a message of unexpected shape", "frames", len(msg))
			continue
		}
		status, body := string(msg[0]), msg[1]
		if status == StatusEvent {
			c.dispatchEvent(body)
			continue
		}
		id, ok := replyID(body)
		if !ok {
			c.log.Debug("registry: reply without an id", "status", status)
			continue
		}
		c.mu.Lock()
		cl := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if cl == nil {
			continue // its caller gave up
		}
		if cl.onReply != nil && status == StatusOK {
			cl.onReply(status, body)
		}
		cl.ch <- result{status: status, body: body}
	}
}

// replyID reads the "id" the server puts first in every reply body.
func replyID(body []byte) (uint64, bool) {
	const prefix = `{"id":`
	if bytes.HasPrefix(body, []byte(prefix)) {
		b := body[len(prefix):]
		n := 0
		for n < len(b) && b[n] >= '0' && b[n] <= '9' {
			n++
		}
		if id, err := strconv.ParseUint(string(b[:n]), 10, 64); err == nil {
			return id, true
		}
	}
	var v struct {
		ID uint64 `json:"id"`
	}
	if json.Unmarshal(body, &v) != nil || v.ID == 0 {
		return 0, false
	}
	return v.ID, true
}

// Ping asks the server who it is.
func (c *Client) Ping(ctx context.Context) (server, boot string, err error) {
	b, err := c.Request(ctx, VerbPing, nil)
	if err != nil {
		return "", "", err
	}
	var p pingReply
	if err := json.Unmarshal(b, &p); err != nil {
		return "", "", fmt.Errorf("registry: PING reply: %w", err)
	}
	return p.Server, p.Boot, nil
}

// Info returns the server's identity, counters, limits and memory.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	b, err := c.Request(ctx, VerbInfo, nil)
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	return info, err
}

// Lookup returns every live instance of name (none is not an error).
func (c *Client) Lookup(ctx context.Context, name string) ([]Entry, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	b, err := c.Request(ctx, VerbLookup, map[string]string{"name": name})
	if err != nil {
		return nil, err
	}
	var rep struct {
		Entries []Entry `json:"entries"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("registry: LOOKUP reply: %w", err)
	}
	return rep.Entries, nil
}

// NameCount is one name of a LIST and how many instances it has.
type NameCount struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// List returns every name with its number of instances, sorted by name.
func (c *Client) List(ctx context.Context) ([]NameCount, error) {
	var all []NameCount
	after := ""
	for {
		b, err := c.Request(ctx, VerbList, map[string]any{"after": after})
		if err != nil {
			return nil, err
		}
		var rep struct {
			Names []NameCount `json:"names"`
			Next  string      `json:"next"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("registry: LIST reply: %w", err)
		}
		all = append(all, rep.Names...)
		if rep.Next == "" {
			return all, nil
		}
		after = rep.Next
	}
}

// ListEntries returns every entry, sorted by name and instance, paging
// through the server's LIST.
func (c *Client) ListEntries(ctx context.Context) ([]Entry, error) {
	var all []Entry
	after := ""
	for {
		b, err := c.Request(ctx, VerbList, map[string]any{"entries": true, "after": after})
		if err != nil {
			return nil, err
		}
		var rep struct {
			Entries []Entry `json:"entries"`
			Next    string  `json:"next"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("registry: LIST reply: %w", err)
		}
		all = append(all, rep.Entries...)
		if rep.Next == "" {
			return all, nil
		}
		after = rep.Next
	}
}

// Pick looks name up and returns one instance chosen by the client's Picker.
func (c *Client) Pick(ctx context.Context, name string) (Entry, error) {
	es, err := c.Lookup(ctx, name)
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 {
		return Entry{}, fmt.Errorf("%w of %q", ErrNoInstances, name)
	}
	return es[c.cfg.Picker.Pick(name, len(es))], nil
}

// Dial looks name up and connects to one of its instances, starting with
// the one the Picker chooses and failing over to the others in turn. Entries
// whose proto is "udp" are dialled over UDP, all others over TCP.
func (c *Client) Dial(ctx context.Context, name string) (net.Conn, error) {
	es, err := c.Lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("%w of %q", ErrNoInstances, name)
	}
	start := c.cfg.Picker.Pick(name, len(es))
	var errs []error
	for i := range es {
		e := es[(start+i)%len(es)]
		network := "tcp"
		if e.Proto == "udp" {
			network = "udp"
		}
		d := net.Dialer{Timeout: c.cfg.DialTimeout}
		conn, err := d.DialContext(ctx, network, e.Addr())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("instance %s at %s: %w", e.Instance, e.Addr(), err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("registry: dial %q: every instance failed: %w", name, errors.Join(errs...))
}

// Picker chooses which of a name's n instances to use first.
type Picker interface {
	Pick(name string, n int) int
}

// RoundRobin returns a Picker that takes each name's instances in turn.
func RoundRobin() Picker { return &roundRobin{next: map[string]uint64{}} }

type roundRobin struct {
	mu   sync.Mutex
	next map[string]uint64
}

func (r *roundRobin) Pick(name string, n int) int {
	if n <= 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.next[name]
	r.next[name] = i + 1
	return int(i % uint64(n))
}

// Random returns a Picker that chooses uniformly at random.
func Random() Picker { return randomPicker{} }

type randomPicker struct{}

func (randomPicker) Pick(_ string, n int) int {
	if n <= 0 {
		return 0
	}
	return rand.IntN(n)
}

// Registration is a service a Client registered and keeps alive.
type Registration struct {
	c     *Client
	mu    sync.Mutex
	svc   Service
	entry Entry
	done  bool
}

// Instance returns the instance id the server assigned.
func (r *Registration) Instance() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entry.Instance
}

// Entry returns the entry as last registered.
func (r *Registration) Entry() Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entry
}

func (s Service) body(token string) map[string]any {
	b := map[string]any{"token": token, "name": s.Name, "host": s.Host, "port": s.Port}
	if s.Proto != "" {
		b["proto"] = s.Proto
	}
	if s.Meta != nil {
		b["meta"] = s.Meta
	}
	if s.TTL > 0 {
		b["ttl"] = s.TTL.Seconds()
	}
	return b
}

// Register registers svc and keeps it alive with heartbeats until
// Deregister or Close; if the server loses it (a restart), the client
// registers it again with the same instance id, or, if the server refuses
// that id (forbidden: not derived from this client's token), under a new
// one, which Instance then returns (logged at WARN).
func (c *Client) Register(ctx context.Context, svc Service) (*Registration, error) {
	if err := checkName(svc.Name); err != nil {
		return nil, err
	}
	b, err := c.Request(ctx, VerbRegister, svc.body(c.token))
	if err != nil {
		return nil, err
	}
	r := &Registration{c: c, svc: svc}
	if err := r.setReply(b); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ghosts, r.entry.Instance)
	for old := range c.regs {
		if old.Instance() == r.entry.Instance {
			// The same endpoint again: the server updated that entry.
			old.mu.Lock()
			old.svc, old.entry = r.svc, r.entry
			old.mu.Unlock()
			return old, nil
		}
	}
	c.regs[r] = struct{}{}
	c.wake()
	return r, nil
}

func (r *Registration) setReply(b []byte) error {
	var rep registerReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("registry: REGISTER reply: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	svc := r.svc
	if svc.Proto == "" {
		svc.Proto = DefaultProto
	}
	svc.TTL = secondsToDuration(rep.TTL)
	r.entry = Entry{Service: svc, Instance: rep.Instance, Origin: rep.Origin, Version: rep.Version}
	return nil
}

// Update replaces the registered service's fields with svc's (the
// instance id stays); the server bumps the entry's version and tells
// watchers.
func (r *Registration) Update(ctx context.Context, svc Service) error {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return fmt.Errorf("registry: update: %w", ErrNotFound)
	}
	body := svc.body(r.c.token)
	body["instance"] = r.entry.Instance
	r.mu.Unlock()
	if svc.Meta == nil {
		body["meta"] = map[string]string{}
	}
	b, err := r.c.Request(ctx, VerbUpdate, body)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.svc = svc
	r.mu.Unlock()
	err = r.setReply(b)
	r.c.wake()
	return err
}

// Deregister removes the entry and stops its heartbeats.
func (r *Registration) Deregister(ctx context.Context) error {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return nil
	}
	r.done = true
	inst := r.entry.Instance
	r.mu.Unlock()
	r.c.mu.Lock()
	delete(r.c.regs, r)
	r.c.mu.Unlock()
	r.c.wake()
	_, err := r.c.Request(ctx, VerbDeregister, map[string]string{"token": r.c.token, "instance": inst})
	if errors.Is(err, ErrNotFound) {
		err = nil // already gone
	}
	return err
}

// reregister registers r again after the server lost it.
func (r *Registration) reregister(ctx context.Context) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	body := r.svc.body(r.c.token)
	body["instance"] = r.entry.Instance
	body["version"] = r.entry.Version
	r.mu.Unlock()
	b, err := r.c.Request(ctx, VerbRegister, body)
	if errors.Is(err, ErrForbidden) {
		// The id is not ours to take (another client holds it, or it was
		// not derived from our token: PROTOCOL.md §8). Retrying would be
		// refused for ever: register afresh under a new id.
		old := body["instance"]
		delete(body, "instance")
		delete(body, "version")
		if b, err = r.c.Request(ctx, VerbRegister, body); err == nil {
			if err := r.setReply(b); err == nil {
				r.c.log.Warn("registry: instance id refused, registered under a new one", "name", r.svc.Name,
					"old_instance", old, "instance", r.Instance())
			}
			return
		}
	}
	if err != nil {
		r.c.log.Warn("registry: register again", "name", r.svc.Name, "instance", body["instance"], "err", err)
		return
	}
	if err := r.setReply(b); err == nil {
		r.c.log.Info("registry: registered again", "name", r.svc.Name, "instance", r.Instance())
	}
}

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// interval is the heartbeat period now, 0 when there is nothing to renew.
func (c *Client) interval() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Duration
	for r := range c.regs {
		r.mu.Lock()
		t := r.entry.TTL / 3
		r.mu.Unlock()
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	for w := range c.allW {
		if k := w.keepalive(); k > 0 && (d == 0 || k < d) {
			d = k
		}
	}
	if d > 0 && c.cfg.HeartbeatInterval > 0 {
		d = c.cfg.HeartbeatInterval
	}
	if d > 0 {
		d = max(d, 20*time.Millisecond)
	}
	return d
}

func (c *Client) heartbeatLoop() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d := c.interval()
		if d == 0 {
			d = time.Hour
		}
		timer.Reset(d)
		select {
		case <-c.stop:
			return
		case <-c.kick:
			timer.Stop()
			continue
		case <-timer.C:
		}
		c.beat(d)
	}
}

// beat sends one HEARTBEAT and repairs what the reply shows lost: entries
// the server no longer holds are registered again, watches it no longer
// holds are made again, entries it holds for us that we do not know
// (left by a request that timed out) are removed.
func (c *Client) beat(d time.Duration) {
	c.mu.Lock()
	regs := make([]*Registration, 0, len(c.regs))
	for r := range c.regs {
		regs = append(regs, r)
	}
	watchIDs := make(map[string]*clientWatch, len(c.watches))
	for id, w := range c.watches {
		watchIDs[id] = w
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), max(d, 200*time.Millisecond))
	defer cancel()
	body := map[string]string{}
	if len(regs) > 0 {
		body["token"] = c.token
	}
	b, err := c.Request(ctx, VerbHeartbeat, body)
	if err != nil {
		c.log.Debug("registry: heartbeat", "err", err)
		return
	}
	var rep heartbeatReply
	if err := json.Unmarshal(b, &rep); err != nil {
		c.log.Warn("registry: HEARTBEAT reply", "err", err)
		return
	}
	renewed := make(map[string]bool, len(rep.Instances))
	for _, id := range rep.Instances {
		renewed[id] = true
	}
	held := make(map[string]bool, len(regs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, r := range regs {
		inst := r.Instance()
		held[inst] = true
		if !renewed[inst] {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				r.reregister(ctx)
				<-sem
			}()
		}
	}
	wg.Wait()
	// Unknown entries of ours seen twice in a row are leftovers.
	c.mu.Lock()
	var stale []string
	for _, id := range rep.Instances {
		if held[id] {
			continue
		}
		known := false
		for r := range c.regs {
			if r.Instance() == id {
				known = true
				break
			}
		}
		if known {
			continue
		}
		if c.ghosts[id] {
			stale = append(stale, id)
			delete(c.ghosts, id)
		} else {
			c.ghosts[id] = true
		}
	}
	c.mu.Unlock()
	for _, id := range stale {
		_, _ = c.Request(ctx, VerbDeregister, map[string]string{"token": c.token, "instance": id})
	}
	live := make(map[string]bool, len(rep.Watches))
	for _, id := range rep.Watches {
		live[id] = true
	}
	for id, w := range watchIDs {
		if !live[id] {
			w.resync("the server no longer holds watch " + id)
		}
	}
}

// Event is something that happened to a watched name.
type Event struct {
	Type    EventType
	Entry   Entry   // the entry, for register, update, deregister, expire
	Seq     uint64  // the server's sequence number of the event in its watch
	Entries []Entry // sync: every current entry
}

// Watch returns a stream of events for name ("" for every name), until ctx
// ends or the client closes. The first event is a sync event holding every
// current entry; whenever the client had to re-establish the watch (the
// server restarted, events were lost, the consumer fell WatchBuffer events
// behind) another sync event follows, and events continue from there.
func (c *Client) Watch(ctx context.Context, name string) (<-chan Event, error) {
	if name != "" {
		if err := checkName(name); err != nil {
			return nil, err
		}
	}
	w := &clientWatch{c: c, name: name, out: make(chan Event), notify: make(chan struct{}, 1),
		resyncCh: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.allW[w] = struct{}{}
	c.mu.Unlock()
	if err := w.subscribe(ctx); err != nil {
		c.mu.Lock()
		delete(c.allW, w)
		c.mu.Unlock()
		return nil, err
	}
	c.wake()
	go w.run(ctx)
	return w.out, nil
}

// WatchFunc calls fn for each event of Watch(ctx, name), on one goroutine,
// until ctx ends or the client closes.
func (c *Client) WatchFunc(ctx context.Context, name string, fn func(Event)) error {
	ch, err := c.Watch(ctx, name)
	if err != nil {
		return err
	}
	for ev := range ch {
		fn(ev)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrClosed
}

type clientWatch struct {
	c    *Client
	name string
	out  chan Event

	mu        sync.Mutex
	id        string // current server watch id
	keep      time.Duration
	seq       uint64 // last sequence number seen
	syncing   bool   // between the WATCH reply and the end of the snapshot
	snapshot  []Entry
	held      []Event // events that arrived while syncing
	queue     []Event // for the consumer
	gen       uint64  // counts replacements of queue
	resyncing bool
	again     bool // events were lost while syncing: sync again

	notify   chan struct{}
	resyncCh chan struct{}
	done     chan struct{}
}

func (w *clientWatch) keepalive() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keep
}

// subscribe sends WATCH and queues the sync event (paging through LIST for
// a watch of every name with more entries than one reply holds).
func (w *clientWatch) subscribe(ctx context.Context) error {
	body := map[string]any{}
	if w.name != "" {
		body["name"] = w.name
	}
	onReply := func(_ string, b []byte) {
		// On the reader goroutine: register the id before any event.
		var rep struct {
			Watch     string  `json:"watch"`
			Keepalive float64 `json:"keepalive"`
			Entries   []Entry `json:"entries"`
		}
		if json.Unmarshal(b, &rep) != nil || rep.Watch == "" {
			return
		}
		w.c.mu.Lock()
		w.mu.Lock()
		if w.id != "" {
			delete(w.c.watches, w.id)
		}
		w.id, w.seq, w.keep = rep.Watch, 0, secondsToDuration(rep.Keepalive)
		w.syncing, w.snapshot, w.held = true, rep.Entries, nil
		w.mu.Unlock()
		w.c.watches[rep.Watch] = w
		w.c.mu.Unlock()
	}
	w.mu.Lock()
	old := w.id
	w.mu.Unlock()
	if _, err := w.c.request(ctx, VerbWatch, body, onReply); err != nil {
		return err
	}
	if old != "" {
		go func() { // the old watch, if the server still has it
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, _ = w.c.Request(ctx, VerbUnwatch, map[string]string{"watch": old})
		}()
	}
	w.mu.Lock()
	snap := w.snapshot
	w.mu.Unlock()
	if w.name == "" {
		// The reply holds no snapshot for every name: page through LIST.
		var err error
		if snap, err = w.c.ListEntries(ctx); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.gen++
	w.queue = append(w.queue[:0], Event{Type: EventSync, Entries: snap})
	w.queue = append(w.queue, w.held...)
	again := w.again
	w.syncing, w.snapshot, w.held, w.resyncing, w.again = false, nil, nil, false, false
	w.mu.Unlock()
	w.signal()
	if again {
		w.resync("events were lost while syncing")
	}
	return nil
}

func (w *clientWatch) signal() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// resync asks the watch's goroutine to establish the watch again.
func (w *clientWatch) resync(why string) {
	w.mu.Lock()
	already := w.resyncing
	w.resyncing = true
	w.mu.Unlock()
	if already {
		return
	}
	w.c.log.Info("registry: watching again", "name", w.name, "why", why)
	select {
	case w.resyncCh <- struct{}{}:
	default:
	}
}

// deliver takes an event from the reader goroutine.
func (w *clientWatch) deliver(ev Event) {
	w.mu.Lock()
	if ev.Seq != w.seq+1 && !(ev.Type == EventKeepalive && ev.Seq == w.seq) {
		gap := fmt.Sprintf("event %d after %d: events were lost", ev.Seq, w.seq)
		w.mu.Unlock()
		w.resync(gap)
		return
	}
	w.seq = ev.Seq
	switch {
	case ev.Type == EventKeepalive:
	case w.syncing && len(w.held) >= w.c.cfg.WatchBuffer:
		w.held, w.again = nil, true // start over once this sync is done
	case w.syncing:
		w.held = append(w.held, ev)
	case len(w.queue) >= w.c.cfg.WatchBuffer:
		w.gen++
		w.queue = w.queue[:0]
		w.mu.Unlock()
		w.resync("the consumer fell behind")
		return
	default:
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	w.signal()
}

func (c *Client) dispatchEvent(body []byte) {
	var ev struct {
		Watch string    `json:"watch"`
		Seq   uint64    `json:"seq"`
		Type  EventType `json:"type"`
		Entry *Entry    `json:"entry"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		c.log.Debug("registry: malformed event", "err", err)
		return
	}
	c.mu.Lock()
	w := c.watches[ev.Watch]
	c.mu.Unlock()
	if w == nil {
		return
	}
	e := Event{Type: ev.Type, Seq: ev.Seq}
	if ev.Entry != nil {
		e.Entry = *ev.Entry
	}
	w.deliver(e)
}

// run feeds the consumer and re-establishes the watch when asked.
func (w *clientWatch) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.out)
	defer w.cleanup()
	for {
		var out chan Event
		var ev Event
		w.mu.Lock()
		gen := w.gen
		if len(w.queue) > 0 {
			out, ev = w.out, w.queue[0]
		}
		w.mu.Unlock()
		select {
		case out <- ev:
			w.mu.Lock()
			// Unless the queue was replaced meanwhile, ev is its head.
			if w.gen == gen && len(w.queue) > 0 {
				w.queue = slices.Delete(w.queue, 0, 1)
			}
			w.mu.Unlock()
		case <-w.notify:
		case <-w.resyncCh:
			for ctx.Err() == nil {
				sctx, cancel := context.WithTimeout(ctx, w.c.cfg.Timeout)
				err := w.subscribe(sctx)
				cancel()
				if err == nil || errors.Is(err, ErrClosed) {
					break
				}
				w.c.log.Debug("registry: watch again", "name", w.name, "err", err)
				select {
				case <-time.After(w.c.cfg.ReconnectInterval):
				case <-ctx.Done():
				case <-w.c.stop:
					return
				}
			}
		case <-ctx.Done():
			return
		case <-w.c.stop:
			return
		}
	}
}

func (w *clientWatch) cleanup() {
	c := w.c
	c.mu.Lock()
	w.mu.Lock()
	id := w.id
	w.mu.Unlock()
	delete(c.watches, id)
	delete(c.allW, w)
	closed := c.closed
	c.mu.Unlock()
	if !closed && id != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = c.Request(ctx, VerbUnwatch, map[string]string{"watch": id})
		cancel()
	}
	c.wake()
}
