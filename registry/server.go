package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hydra-net/hydra/internal/repeatlog"
	"github.com/hydra-net/hydra/zmtp"
)

// Server is the registry server: a ZMTP ROUTER socket and one goroutine
// (Serve's) that receives every request, owns every entry and watch, and
// does every send. Requests are answered in the order each peer sent them.
type Server struct {
	cfg   Config
	log   *slog.Logger
	sock  *zmtp.Socket
	boot  string
	start time.Time

	closeOnce  sync.Once
	sockClosed chan struct{}
	done       chan struct{} // closed when Serve returns
	serving    atomic.Bool   // Serve was called (or may no longer be)
	closed     atomic.Bool
	stopping   atomic.Bool // Close or Serve's context asked the loop to end

	// Owned by the loop.
	st           *store
	watches      map[string]*watch
	watchAll     map[*watch]struct{}
	watchName    map[string]map[*watch]struct{}
	peers        map[string][]*watch // routing id → its watches
	req          request
	body         []byte
	listBuf      []byte // the LIST page being built (listEntries)
	nstatic      int    // entries from Config.Static: they never go
	frames       [][]byte
	nb           context.Context                // cancelled: makes SendContext non-blocking
	remote       remoteCopies                   // other servers' entries (remote.go)
	local        map[string]*entry              // in-process entries (local.go)
	localWatches map[*localWatch]struct{}       // in-process watchers (local.go)
	mechanism    string                         // the port's ZMTP mechanism, for INFO
	refusals     map[string]*repeatlog.Failures // role refusals by peer and verb, for logging once

	// The replicator (replicator.go) and the loop's inbox: functions other
	// goroutines post for the loop to run, and the wake-up that makes the
	// loop's receive return for them.
	repl       Replicator
	host       *Host
	inbox      chan func()
	loopOnce   sync.Once
	loopDone   chan struct{} // closed when the loop ends, or will never run
	woken      atomic.Bool
	wakeMu     sync.Mutex
	wakeCtx    context.Context
	wakeFn     context.CancelFunc
	tickEvery  time.Duration
	lastTick   time.Time
	tickerDone chan struct{}

	stats serverStats
}

type serverStats struct {
	requests, errors, registered, expired, deregistered atomic.Int64
	events, eventsDropped, repliesDropped               atomic.Int64
	entries, names, clients, watches                    atomic.Int64
	verbs                                               verbCounters // by verb and result (observe.go)
}

// Stats is a snapshot of a server's counters.
type Stats struct {
	Requests       int64 `json:"requests"`        // requests handled
	Errors         int64 `json:"errors"`          // ERR replies sent
	Registered     int64 `json:"registered"`      // entries created
	Expired        int64 `json:"expired"`         // entries removed by TTL
	Deregistered   int64 `json:"deregistered"`    // entries removed by their owner
	Events         int64 `json:"events"`          // events sent to watchers
	EventsDropped  int64 `json:"events_dropped"`  // events a full watcher queue refused
	RepliesDropped int64 `json:"replies_dropped"` // replies a full or gone peer refused
	SlowConsumers  int64 `json:"slow_consumers"`  // peers cut off for not reading (Config.MaxPendingBytes)
	Entries        int64 `json:"entries"`         // entries now
	Names          int64 `json:"names"`           // names now
	Clients        int64 `json:"clients"`         // tokens holding entries now
	Watches        int64 `json:"watches"`         // watches now
}

// watch is one WATCH: events for one name ("" = all) go to one peer.
type watch struct {
	id   string
	peer string   // routing id
	env  [][]byte // the envelope events carry
	name string
	seq  uint64
	last time.Time // when the last event or keepalive went out
}

var (
	statusOK    = []byte(StatusOK)
	statusErr   = []byte(StatusError)
	statusEvent = []byte(StatusEvent)
)

// NewServer makes a server with cfg; Bind it to endpoints, then Serve.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	hb := cfg.PeerHeartbeat
	if hb < 0 {
		hb = 0
	}
	wt := max(cfg.WriteTimeout, 0)
	sock, err := zmtp.NewSocket(zmtp.ROUTER, zmtp.Config{
		Logger:            slog.New(quieter{cfg.Logger.Handler()}),
		RouterMandatory:   true,
		MaxMsgSize:        cfg.MaxRequestBytes,
		HeartbeatInterval: hb,
		Linger:            2 * time.Second,
		RecvTimeout:       cfg.SweepInterval,
		Security:          cfg.Security,
		MaxPendingBytes:   cfg.MaxPendingBytes,
		MaxPendingTotal:   cfg.MaxPendingTotal,
		WriteTimeout:      wt,
		Handshakes:        limiter(cfg.HandshakesPerSource, cfg.Handshakes, true),
		Conns:             limiter(cfg.ConnsPerSource, cfg.Conns, false),
	})
	if err != nil {
		return nil, err
	}
	nb, cancel := context.WithCancel(context.Background())
	cancel()
	s := &Server{
		cfg: cfg, log: cfg.Logger, sock: sock, boot: randomHex(8), start: time.Now(),
		sockClosed: make(chan struct{}), done: make(chan struct{}),
		st: newStore(), watches: map[string]*watch{}, watchAll: map[*watch]struct{}{},
		watchName: map[string]map[*watch]struct{}{}, peers: map[string][]*watch{}, nb: nb,
		remote: newRemoteCopies(), local: map[string]*entry{}, localWatches: map[*localWatch]struct{}{},
		refusals: map[string]*repeatlog.Failures{},
		repl:     cfg.Replicator, inbox: make(chan func(), 1024), loopDone: make(chan struct{}),
	}
	s.host = &Host{s}
	s.mechanism = "NULL"
	if cfg.Security != nil {
		s.mechanism = cfg.Security().Name()
	}
	s.wakeCtx, s.wakeFn = context.WithCancel(context.Background())
	for _, svc := range cfg.Static {
		if err := s.addStatic(svc); err != nil {
			sock.Close()
			return nil, err
		}
	}
	s.updateGauges()
	return s, nil
}

func (s *Server) addStatic(svc Service) error {
	if svc.Proto == "" {
		svc.Proto = DefaultProto
	}
	svc.TTL = 0
	for _, err := range []*Error{checkName(svc.Name), checkHost(svc.Host), checkPort(int64(svc.Port)),
		checkProto(svc.Proto), checkMeta(svc.Meta, s.cfg.MaxMetadataBytes)} {
		if err != nil {
			return fmt.Errorf("registry: static service %q: %s", svc.Name, err.Message)
		}
	}
	e := &entry{Entry: Entry{Service: svc, Instance: "static-" + randomHex(6), Origin: s.cfg.ServerID,
		Version: 1, Static: true}, hidx: -1}
	e.key = endpointKey(&e.Service)
	e.encode()
	s.st.add(e)
	s.nstatic++
	return nil
}

// ID returns the server id stamped on the entries it originates.
func (s *Server) ID() string { return s.cfg.ServerID }

// Bind listens on a ZMTP endpoint: "tcp://127.0.0.1:8420", "tcp://*:0",
// "ipc:///tmp/hydra.sock". It may be called more than once.
func (s *Server) Bind(endpoint string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.sock.Bind(endpoint)
}

// BindListener makes the server accept ZMTP peers from l (a portshare
// Listener's ZMTP half, to share a port with tunnels) until Close, which
// closes l.
func (s *Server) BindListener(l net.Listener) error {
	if s.closed.Load() {
		l.Close()
		return ErrClosed
	}
	return s.sock.BindListener(l)
}

// Endpoint returns the endpoint of the last Bind, with the real port.
func (s *Server) Endpoint() string { return s.sock.Endpoint() }

// Serve answers requests until ctx ends or Close is called, then closes the
// socket (flushing queued replies for up to two seconds) and returns nil.
// It may be called once. One goroutine, Serve's, receives every request,
// owns every entry and watch, and sends every reply and event.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return ErrClosed
	}
	// From here Close waits for done, also when it came first: a Close
	// that closed the socket before this CAS must not wait for ever.
	defer close(s.done)
	if s.closed.Load() || s.stopping.Load() {
		s.endLoop()
		s.closeSocket()
		return ErrClosed
	}
	stop := context.AfterFunc(ctx, s.requestStop)
	defer stop()
	s.log.Info("registry: serving", "endpoint", s.Endpoint(), "server_id", s.cfg.ServerID,
		"max_entries", s.cfg.MaxEntries, "max_entries_per_client", s.cfg.MaxEntriesPerClient,
		"max_metadata_bytes", s.cfg.MaxMetadataBytes, "static", len(s.cfg.Static))
	last := time.Now()
	s.loopStart(last)
	for !s.stopping.Load() {
		// Run what other goroutines posted (Local's calls, the
		// replicator's links); recv returns early (context.Canceled) when
		// they post more.
		recv := s.poll()
		// Recv gives up after SweepInterval (the socket's RecvTimeout), so
		// that expiry and keepalives run when no request comes.
		msg, err := s.sock.RecvContext(recv)
		now := time.Now()
		if err != nil && !errors.Is(err, zmtp.ErrTimeout) && !errors.Is(err, context.Canceled) {
			if !errors.Is(err, zmtp.ErrClosed) {
				s.log.Error("registry: receive", "err", err)
			}
			break
		}
		if err == nil {
			s.handle(msg, now)
		}
		if now.Sub(last) >= s.cfg.SweepInterval {
			last = now
			s.sweep(now)
			s.keepalive(now)
		}
		s.flush() // the replicator sends the changes this iteration made
	}
	if !s.closed.Load() {
		s.sayClosing(time.Now()) // the socket's Linger flushes these
	}
	s.loopStop()
	s.closeSocket()
	<-s.sockClosed
	s.log.Info("registry: stopped", "entries", len(s.st.entries))
	return nil
}

// closeSocket closes the socket once: Serve's Recv returns ErrClosed, and
// what Serve queued before is flushed.
func (s *Server) closeSocket() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.sock.Close()
		close(s.sockClosed)
	})
}

// requestStop asks the loop to end: it tells its watchers (sayClosing),
// then closes the socket.
func (s *Server) requestStop() {
	s.stopping.Store(true)
	s.wake()
}

// sayClosing sends every watch a "closing" event: the server is going
// away, so a watcher learns it at once rather than at its next keepalive
// (PROTOCOL.md, "Events").
func (s *Server) sayClosing(now time.Time) {
	for _, w := range s.watches {
		w.seq++
		s.sendEvent(w, EventClosing, nil, now)
	}
	if n := len(s.watches); n > 0 {
		s.log.Debug("registry: told watchers of the shutdown", "watches", n)
	}
}

// Close stops Serve, if it runs, and waits for it; it closes the socket.
func (s *Server) Close() error {
	if !s.serving.CompareAndSwap(false, true) {
		s.requestStop()
		<-s.done
	} else {
		// Serve never runs: what was posted never will either, and a later
		// Close must not wait for a Serve that will not close done.
		s.closeSocket()
		s.endLoop()
		close(s.done)
	}
	return nil
}

// Stats returns the server's counters; safe to call at any time.
func (s *Server) Stats() Stats {
	st := &s.stats
	return Stats{
		Requests: st.requests.Load(), Errors: st.errors.Load(), Registered: st.registered.Load(),
		Expired: st.expired.Load(), Deregistered: st.deregistered.Load(), Events: st.events.Load(),
		EventsDropped: st.eventsDropped.Load(), RepliesDropped: st.repliesDropped.Load(), SlowConsumers: s.sock.SlowConsumers(),
		Entries: st.entries.Load(), Names: st.names.Load(), Clients: st.clients.Load(), Watches: st.watches.Load(),
	}
}

func (s *Server) updateGauges() {
	s.stats.entries.Store(int64(len(s.st.entries)))
	s.stats.names.Store(int64(len(s.st.names)))
	s.stats.clients.Store(int64(len(s.st.owners)))
	s.stats.watches.Store(int64(len(s.watches)))
}

// send sends one message to the peer of env without ever blocking: a peer
// that is gone or whose queue is full does not get it.
func (s *Server) send(env [][]byte, status, body []byte) error {
	s.frames = append(append(s.frames[:0], env...), status, body)
	err := s.sock.SendContext(s.nb, s.frames...)
	clear(s.frames)
	return err
}

func (s *Server) reply(env [][]byte, status []byte, body []byte) {
	if err := s.send(env, status, body); err != nil {
		s.stats.repliesDropped.Add(1)
		s.log.Debug("registry: reply dropped", "peer", fmt.Sprintf("%x", env[0]), "err", err)
		if errors.Is(err, zmtp.ErrSlowConsumer) && len(s.peers[string(env[0])]) > 0 {
			s.dropPeer(string(env[0])) // cut off: its watches go with it
			s.updateGauges()
		}
	}
}

func (s *Server) replyErr(env [][]byte, id json.RawMessage, verb string, e *Error) {
	s.stats.errors.Add(1)
	s.log.Debug("registry: error reply", "verb", verb, "code", e.Code, "error", e.Message)
	s.body = appendBody(s.body[:0], id, struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}{e.Code, e.Message})
	s.reply(env, statusErr, s.body)
}

func (s *Server) handle(msg [][]byte, now time.Time) {
	env, frames := splitEnvelope(msg)
	if len(frames) > 0 && bytes.EqualFold(frames[0], syncFrame) && !s.allowed(env[0], RoleServer) {
		// Link traffic from a peer that is no joined server: refused, and
		// the connection dropped, so that it cannot go on trying.
		s.stats.requests.Add(1)
		s.refused(env[0], VerbSync, RoleServer)
		s.replyErr(env, requestID(frames), VerbSync, forbiddenRole(VerbSync, RoleServer))
		s.sock.Disconnect(env[0])
		return
	}
	if s.repl != nil && len(frames) > 0 && bytes.EqualFold(frames[0], syncFrame) {
		// SYNC is link traffic of the replicator, not a request: answered
		// only when it is not link traffic at all. A joined server is sent
		// snapshots in bursts: only the total budget bounds what it holds.
		s.sock.SetPendingLimit(env[0], s.cfg.MaxPendingTotal)
		if err := s.repl.Sync(env, frames[1:], now); err != nil {
			s.replyErr(env, nil, VerbSync, err)
		}
		s.updateGauges()
		return
	}
	s.stats.requests.Add(1)
	r := &s.req
	*r = request{}
	verb, perr := parseRequest(frames, r)
	if perr != nil {
		s.countRequest(verb, true)
		s.replyErr(env, r.ID, verb, perr)
		return
	}
	if role, any := verbRole(verb); !s.allowedVerb(env[0], role, any) {
		s.refused(env[0], verb, role)
		s.replyErr(env, r.ID, verb, forbiddenRole(verb, role))
		return
	}
	var (
		res any
		err *Error
	)
	switch verb {
	case VerbPing:
		res = pingReply{Server: s.cfg.ServerID, Boot: s.boot, Protocol: ProtocolVersion}
	case VerbInfo:
		res = s.info()
	case VerbRegister:
		res, err = s.register(r, env[0], now)
	case VerbUpdate:
		res, err = s.update(r, now)
	case VerbHeartbeat:
		res, err = s.heartbeat(r, now, string(env[0]))
	case VerbDeregister:
		res, err = s.deregister(r)
	case VerbLookup:
		if r.Name == nil {
			err = badRequest("name is missing")
		} else if err = checkName(*r.Name); err == nil {
			res = s.st.lookupBody(*r.Name)
		}
	case VerbList:
		res, err = s.list(r)
	case VerbWatch:
		res, err = s.watch(r, env, now)
	case VerbUnwatch:
		res, err = s.unwatch(r, string(env[0]))
	case VerbJoin:
		res, err = s.join(frames)
	case VerbLeave:
		res, err = s.leave(frames)
	}
	s.countRequest(verb, err != nil)
	if err != nil {
		s.replyErr(env, r.ID, verb, err)
		return
	}
	if (verb == VerbRegister || verb == VerbUpdate || verb == VerbLookup) && s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.debugRequest(verb, r, res)
	}
	s.body = appendBody(s.body[:0], r.ID, res)
	s.reply(env, statusOK, s.body)
	s.updateGauges()
}

// debugRequest logs a successful REGISTER, UPDATE or LOOKUP at debug, one
// line each (DEREGISTER logs its entries in deregister).
func (s *Server) debugRequest(verb string, r *request, res any) {
	switch verb {
	case VerbLookup:
		n := 0
		if ns := s.st.names[*r.Name]; ns != nil {
			n = len(ns.entries)
		}
		s.log.Debug("registry: lookup", "name", *r.Name, "instances", n)
	case VerbRegister, VerbUpdate:
		rr, ok := res.(registerReply)
		e := s.st.entries[rr.Instance]
		if !ok || e == nil {
			return
		}
		msg := "registry: " + strings.ToLower(verb)
		if verb == VerbRegister && !rr.Created {
			msg = "registry: register again"
		}
		s.log.Debug(msg, "name", e.Name, "address", e.String(), "instance", e.Instance, "ttl", e.TTL, "version", e.Version)
	}
}

type pingReply struct {
	Server   string `json:"server"`
	Boot     string `json:"boot"`
	Protocol int    `json:"protocol"`
}

// Info is the INFO reply.
type Info struct {
	Server   string  `json:"server"`
	Boot     string  `json:"boot"`
	Protocol int     `json:"protocol"`
	Uptime   float64 `json:"uptime"` // seconds
	Stats
	Limits Limits     `json:"limits"`
	Memory MemoryInfo `json:"memory"`
	// Security is the ZMTP mechanism of the server's port: "NULL" or
	// "CURVE".
	Security string `json:"security"`
	// Kinds counts the entries the server holds by where they come from.
	Kinds EntryKinds `json:"kinds"`
	// Join is the replicator's object (package join: links and origins),
	// when the server joins others or is joined.
	Join json.RawMessage `json:"join,omitempty"`
	// Extra are the objects of Config.Info, marshalled as more keys of
	// the reply (node's "version" and "tunnels"). Not filled by decoding.
	Extra map[string]any `json:"-"`
}

// EntryKinds counts entries by where they come from (INFO's "kinds").
type EntryKinds struct {
	Clients   int `json:"clients"`    // registered by clients (with a token and TTL)
	Static    int `json:"static"`     // from the server's configuration
	InProcess int `json:"in_process"` // by the server process itself (tunnel proxies)
	Joined    int `json:"joined"`     // other servers' entries, shown (join)
	Hidden    int `json:"hidden"`     // other servers' copies hidden by a better copy
}

// MarshalJSON marshals the reply with Extra's keys after the others.
func (in Info) MarshalJSON() ([]byte, error) {
	type plain Info
	b, err := json.Marshal(plain(in))
	if err != nil || len(in.Extra) == 0 {
		return b, err
	}
	var known map[string]json.RawMessage
	if err := json.Unmarshal(b, &known); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(in.Extra))
	for k := range in.Extra {
		if _, dup := known[k]; !dup {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	b = b[:len(b)-1]
	for _, k := range keys {
		v, err := json.Marshal(in.Extra[k])
		if err != nil {
			return nil, fmt.Errorf("registry: INFO %q: %w", k, err)
		}
		kb, _ := json.Marshal(k)
		b = append(append(append(append(b, ','), kb...), ':'), v...)
	}
	return append(b, '}'), nil
}

// Limits are the server's configured limits, as INFO reports them.
type Limits struct {
	MaxEntries          int     `json:"max_entries"`
	MaxEntriesPerClient int     `json:"max_entries_per_client"`
	MaxMetadataBytes    int     `json:"max_metadata_bytes"`
	MaxRequestBytes     int64   `json:"max_request_bytes"`
	MaxWatches          int     `json:"max_watches"`
	MaxWatchesPerPeer   int     `json:"max_watches_per_peer"`
	MaxListPage         int     `json:"max_list_page"`
	MaxListBytes        int     `json:"max_list_bytes"`
	DefaultTTL          float64 `json:"default_ttl"`
	MinTTL              float64 `json:"min_ttl"`
	MaxTTL              float64 `json:"max_ttl"`
	WatchKeepalive      float64 `json:"watch_keepalive"`
	MaxPendingBytes     int64   `json:"max_pending_bytes"`
	MaxPendingTotal     int64   `json:"max_pending_total"`
	WriteTimeout        float64 `json:"write_timeout"` // seconds; 0: off
}

// MemoryInfo is the server process's memory, from runtime.MemStats.
type MemoryInfo struct {
	HeapAlloc  uint64 `json:"heap_alloc"` // bytes of live heap objects
	HeapInuse  uint64 `json:"heap_inuse"` // bytes in in-use heap spans
	Sys        uint64 `json:"sys"`        // bytes obtained from the OS
	Goroutines int    `json:"goroutines"`
}

func (s *Server) info() Info {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	c := &s.cfg
	s.updateGauges()
	return Info{
		Server: c.ServerID, Boot: s.boot, Protocol: ProtocolVersion,
		Uptime: time.Since(s.start).Seconds(), Stats: s.Stats(),
		Limits: Limits{
			MaxEntries: c.MaxEntries, MaxEntriesPerClient: c.MaxEntriesPerClient,
			MaxMetadataBytes: c.MaxMetadataBytes, MaxRequestBytes: c.MaxRequestBytes,
			MaxWatches: c.MaxWatches, MaxWatchesPerPeer: c.MaxWatchesPerPeer, MaxListPage: c.MaxListPage, MaxListBytes: c.MaxListBytes,
			DefaultTTL: c.DefaultTTL.Seconds(), MinTTL: c.MinTTL.Seconds(), MaxTTL: c.MaxTTL.Seconds(),
			WatchKeepalive:  c.WatchKeepalive.Seconds(),
			MaxPendingBytes: c.MaxPendingBytes, MaxPendingTotal: c.MaxPendingTotal,
			WriteTimeout: max(c.WriteTimeout, 0).Seconds(),
		},
		Memory:   MemoryInfo{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()},
		Security: s.mechanism, Kinds: s.kinds(),
		Join:  s.replInfo(time.Now()),
		Extra: s.extraInfo(),
	}
}

// kinds counts the entries by kind (INFO's "kinds").
func (s *Server) kinds() EntryKinds {
	// Counted as added, not per INFO: a walk of every entry per request
	// would be the loop's work for a 16-byte message.
	k := EntryKinds{Static: s.nstatic, InProcess: len(s.local), Joined: s.remote.visible,
		Hidden: s.remote.ncopies - s.remote.visible}
	k.Clients = s.localEntries() - k.Static - k.InProcess
	return k
}

// extraInfo is Config.Info's objects, nil without the hook.
func (s *Server) extraInfo() map[string]any {
	if s.cfg.Info == nil {
		return nil
	}
	return s.cfg.Info()
}

// replInfo is INFO's "join" object: the replicator's, if it has one.
func (s *Server) replInfo(now time.Time) json.RawMessage {
	if s.repl == nil {
		return nil
	}
	v := s.repl.Info(now)
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("registry: replicator info", "err", err)
		return nil
	}
	return b
}

// join answers JOIN: the replicator's business.
func (s *Server) join(frames [][]byte) (any, *Error) {
	if s.repl == nil {
		return nil, badRequest("this server joins no other servers (it runs without join)")
	}
	var body []byte
	if len(frames) == 2 {
		body = frames[1]
	}
	return s.repl.Join(body)
}

// Leaver is a Replicator that answers LEAVE (package join): body is the
// request's JSON body (maybe empty); the result is the OK reply.
type Leaver interface {
	Leave(body []byte) (any, *Error)
}

// leave answers LEAVE: the replicator's business, if it has the verb.
func (s *Server) leave(frames [][]byte) (any, *Error) {
	l, ok := s.repl.(Leaver)
	if !ok {
		return nil, badRequest("this server joins no other servers (it runs without join)")
	}
	var body []byte
	if len(frames) == 2 {
		body = frames[1]
	}
	return l.Leave(body)
}

// localChanged tells the replicator of a change of an entry this server
// originates; after a removal, a remote copy of the same instance may show
// again.
func (s *Server) localChanged(typ EventType, e *entry, now time.Time) {
	if s.repl != nil {
		var enc []byte
		if typ == EventRegister || typ == EventUpdate {
			enc = e.enc
		}
		s.repl.Changed(typ, e.Instance, enc, now)
	}
	if (typ == EventDeregister || typ == EventExpire) && len(s.remote.copies[e.Instance]) > 0 {
		s.refresh(e.Instance, EventDeregister, now)
	}
}

// registerReply answers REGISTER and UPDATE.
type registerReply struct {
	Instance string  `json:"instance"`
	Token    string  `json:"token"`
	TTL      float64 `json:"ttl"`
	Version  uint64  `json:"version"`
	Origin   string  `json:"origin"`
	Created  bool    `json:"created"`
}

// service builds the service a REGISTER (base nil: name, host and port
// required) or UPDATE (base: the entry's current service) describes.
func (s *Server) service(r *request, base *Service) (Service, *Error) {
	var svc Service
	if base != nil {
		svc = *base
	} else {
		svc.Proto, svc.TTL = DefaultProto, s.cfg.DefaultTTL
		switch {
		case r.Name == nil:
			return svc, badRequest("name is missing")
		case r.Host == nil:
			return svc, badRequest("host is missing")
		case r.Port == nil:
			return svc, badRequest("port is missing")
		}
	}
	if r.Name != nil {
		if err := checkName(*r.Name); err != nil {
			return svc, err
		}
		svc.Name = *r.Name
	}
	if r.Host != nil {
		if err := checkHost(*r.Host); err != nil {
			return svc, err
		}
		svc.Host = *r.Host
	}
	if r.Port != nil {
		if err := checkPort(*r.Port); err != nil {
			return svc, err
		}
		svc.Port = int(*r.Port)
	}
	if r.Proto != nil {
		p := *r.Proto
		if p == "" {
			p = DefaultProto
		}
		if err := checkProto(p); err != nil {
			return svc, err
		}
		svc.Proto = p
	}
	if r.Meta != nil {
		if err := checkMeta(*r.Meta, s.cfg.MaxMetadataBytes); err != nil {
			return svc, err
		}
		svc.Meta = *r.Meta
		if len(svc.Meta) == 0 {
			svc.Meta = nil
		}
	}
	if r.TTL != nil {
		t := *r.TTL
		if math.IsNaN(t) || math.IsInf(t, 0) || t <= 0 {
			return svc, badRequest("ttl must be a positive number of seconds")
		}
		d := secondsToDuration(t)
		if d < s.cfg.MinTTL || d > s.cfg.MaxTTL {
			return svc, badRequest("ttl %gs out of range [%g, %g] seconds", t, s.cfg.MinTTL.Seconds(), s.cfg.MaxTTL.Seconds())
		}
		svc.TTL = d
	}
	return svc, nil
}

func sameService(a, b *Service) bool {
	if a.Name != b.Name || a.Host != b.Host || a.Port != b.Port || a.Proto != b.Proto || a.TTL != b.TTL || len(a.Meta) != len(b.Meta) {
		return false
	}
	for k, v := range a.Meta {
		if w, ok := b.Meta[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// owned finds the entry instance of token; forbidden if another holds it.
func (s *Server) owned(token, instance string) (*entry, *Error) {
	e := s.st.entries[instance]
	if e == nil || e.Origin != s.cfg.ServerID {
		return nil, nil // a copy from another server is not held here
	}
	if e.owner == nil && s.local[instance] != nil {
		return nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("instance %s belongs to the server's process (registered in-process)", instance)}
	}
	if e.owner == nil {
		return nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("instance %s is static (from the server's configuration)", instance)}
	}
	if e.owner.token != token {
		return nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("instance %s belongs to another client (token)", instance)}
	}
	return e, nil
}

func (s *Server) register(r *request, peer []byte, now time.Time) (any, *Error) {
	token := r.Token
	if token == "" {
		token = randomHex(16)
	} else if err := checkToken(token); err != nil {
		return nil, err
	}
	if r.Instance != "" {
		if err := checkID("instance", r.Instance); err != nil {
			return nil, err
		}
	}
	svc, err := s.service(r, nil)
	if err != nil {
		return nil, err
	}
	var e *entry
	if r.Instance != "" {
		if e, err = s.owned(token, r.Instance); err != nil {
			return nil, err
		}
		if e == nil && !tokenOwns(token, r.Instance) {
			// Ids are public (LOOKUP shows them): whoever re-registered a
			// lost one first would own it. Only the token it was derived
			// from may take it again (PROTOCOL.md §8).
			return nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("instance %s was not issued to this token: register without \"instance\" for a new id", r.Instance)}
		}
	}
	o := s.st.owners[token]
	if e == nil && o != nil {
		e = o.byKey[endpointKey(&svc)] // the same endpoint again: the same entry
	}
	if e != nil {
		s.apply(e, svc, now)
		return registerReply{Instance: e.Instance, Token: token, TTL: e.TTL.Seconds(), Version: e.Version, Origin: e.Origin}, nil
	}
	if s.localEntries() >= s.cfg.MaxEntries {
		return nil, &Error{Code: CodeLimit, Message: fmt.Sprintf("the server holds %d entries, its limit (max entries)", s.cfg.MaxEntries)}
	}
	ident, who := s.identity(peer)
	if s.st.quota[ident] >= s.cfg.MaxEntriesPerClient {
		// Counted by who asks, not by token: tokens are free.
		return nil, &Error{Code: CodeLimit, Message: fmt.Sprintf("this client (%s) holds %d entries, the limit per client", who, s.cfg.MaxEntriesPerClient)}
	}
	if o == nil {
		o = &owner{token: token, entries: map[string]*entry{}, byKey: map[string]*entry{}}
		s.st.owners[token] = o
	}
	id := r.Instance
	if id != "" {
		s.shadow(id) // a local registration hides a remote copy
	}
	for id == "" || s.st.entries[id] != nil {
		id = newInstanceID(token)
	}
	e = &entry{Entry: Entry{Service: svc, Instance: id, Origin: s.cfg.ServerID, Version: 1}, owner: o, hidx: -1,
		expires: now.Add(svc.TTL), ident: ident}
	if r.Version > 0 && r.Version < math.MaxUint64 {
		e.Version = r.Version + 1 // registering again after a restart: stay ahead of old copies
	}
	e.key = endpointKey(&svc)
	e.encode()
	s.st.add(e)
	s.stats.registered.Add(1)
	s.emit(EventRegister, e, now)
	s.localChanged(EventRegister, e, now)
	return registerReply{Instance: id, Token: token, TTL: svc.TTL.Seconds(), Version: e.Version, Origin: e.Origin, Created: true}, nil
}

// apply sets e's service to svc: renewed, and if anything changed, a new
// version and an update event.
func (s *Server) apply(e *entry, svc Service, now time.Time) {
	if !sameService(&e.Service, &svc) {
		old := e.Service
		e.Service = svc
		e.Version++
		s.st.changed(e, old)
		s.emit(EventUpdate, e, now)
		s.localChanged(EventUpdate, e, now)
	}
	s.st.renew(e, now)
}

func (s *Server) update(r *request, now time.Time) (any, *Error) {
	if err := checkToken(r.Token); err != nil {
		return nil, err
	}
	if err := checkID("instance", r.Instance); err != nil {
		return nil, err
	}
	e, err := s.owned(r.Token, r.Instance)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no instance %s (it expired, or the server restarted): register it again", r.Instance)}
	}
	svc, err := s.service(r, &e.Service)
	if err != nil {
		return nil, err
	}
	if other := e.owner.byKey[endpointKey(&svc)]; other != nil && other != e {
		return nil, badRequest("this client already registered %s at %s as instance %s", svc.Name, other.String(), other.Instance)
	}
	s.apply(e, svc, now)
	return registerReply{Instance: e.Instance, Token: r.Token, TTL: e.TTL.Seconds(), Version: e.Version, Origin: e.Origin}, nil
}

type heartbeatReply struct {
	Renewed   int      `json:"renewed"`
	Instances []string `json:"instances"`
	Watches   []string `json:"watches"`
	Boot      string   `json:"boot"`
}

func (s *Server) heartbeat(r *request, now time.Time, peer string) (any, *Error) {
	rep := heartbeatReply{Instances: []string{}, Watches: []string{}, Boot: s.boot}
	if r.Token == "" && r.Instance != "" {
		return nil, badRequest("token is missing")
	}
	if r.Token != "" {
		if err := checkToken(r.Token); err != nil {
			return nil, err
		}
		if r.Instance != "" {
			if err := checkID("instance", r.Instance); err != nil {
				return nil, err
			}
			e, err := s.owned(r.Token, r.Instance)
			if err != nil {
				return nil, err
			}
			if e != nil {
				s.st.renew(e, now)
				rep.Instances = append(rep.Instances, e.Instance)
			}
		} else if o := s.st.owners[r.Token]; o != nil {
			for _, e := range o.entries {
				s.st.renew(e, now)
				rep.Instances = append(rep.Instances, e.Instance)
			}
		}
	}
	rep.Renewed = len(rep.Instances)
	for _, w := range s.peers[peer] {
		rep.Watches = append(rep.Watches, w.id)
	}
	return rep, nil
}

func (s *Server) deregister(r *request) (any, *Error) {
	if err := checkToken(r.Token); err != nil {
		return nil, err
	}
	var gone []*entry
	if r.Instance != "" {
		if err := checkID("instance", r.Instance); err != nil {
			return nil, err
		}
		e, err := s.owned(r.Token, r.Instance)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no instance %s", r.Instance)}
		}
		gone = append(gone, e)
	} else if o := s.st.owners[r.Token]; o != nil {
		for _, e := range o.entries {
			gone = append(gone, e)
		}
	}
	now := time.Now()
	debug := s.log.Enabled(context.Background(), slog.LevelDebug)
	for _, e := range gone {
		if debug {
			s.log.Debug("registry: deregister", "name", e.Name, "address", e.String(), "instance", e.Instance)
		}
		s.st.remove(e)
		s.stats.deregistered.Add(1)
		s.emit(EventDeregister, e, now)
		s.localChanged(EventDeregister, e, now)
	}
	return struct {
		Removed int `json:"removed"`
	}{len(gone)}, nil
}

type nameCount struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func (s *Server) list(r *request) (any, *Error) {
	limit := s.cfg.MaxListPage
	if r.Limit < 0 {
		return nil, badRequest("limit must not be negative")
	}
	if r.Limit > 0 && r.Limit < limit {
		limit = r.Limit
	}
	names := s.st.sortedNames()
	if !r.Entries {
		i, _ := slices.BinarySearch(names, r.After)
		if i < len(names) && names[i] == r.After && r.After != "" {
			i++
		}
		out := struct {
			Names []nameCount `json:"names"`
			Next  string      `json:"next,omitempty"`
		}{Names: []nameCount{}}
		for ; i < len(names) && len(out.Names) < limit; i++ {
			out.Names = append(out.Names, nameCount{names[i], len(s.st.names[names[i]].entries)})
		}
		if i < len(names) {
			out.Next = out.Names[len(out.Names)-1].Name
		}
		return out, nil
	}
	return s.listEntries(names, r.After, limit), nil
}

// listEntries is the body of a LIST entries=true page: the entries after
// the cursor, sorted by name then instance, until limit of them or
// MaxListBytes of their JSON (at least one), appended as encoded.
func (s *Server) listEntries(names []string, after string, limit int) []byte {
	afterName, afterInst, _ := strings.Cut(after, "\n")
	i, _ := slices.BinarySearch(names, afterName)
	b := append(s.listBuf[:0], `{"entries":[`...)
	n, size := 0, 0
	var last *entry
	more := false
	for ; i < len(names) && !more; i++ {
		es := s.st.names[names[i]].byInstance()
		if after != "" && names[i] == afterName {
			k, found := slices.BinarySearchFunc(es, afterInst, func(e *entry, inst string) int { return strings.Compare(e.Instance, inst) })
			if found {
				k++
			}
			es = es[k:]
		}
		for _, e := range es {
			if n == limit || n > 0 && size+len(e.enc) > s.cfg.MaxListBytes {
				more = true
				break
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, e.enc...)
			n++
			size += len(e.enc) + 1
			last = e
		}
	}
	b = append(b, ']')
	if more && last != nil {
		next, _ := json.Marshal(last.Name + "\n" + last.Instance)
		b = append(append(b, `,"next":`...), next...)
	}
	b = append(b, '}')
	s.listBuf = b
	return b
}

type watchReply struct {
	Watch     string            `json:"watch"`
	Keepalive float64           `json:"keepalive"`
	Entries   []json.RawMessage `json:"entries,omitempty"`
}

func (s *Server) watch(r *request, env [][]byte, now time.Time) (any, *Error) {
	name := ""
	if r.Name != nil {
		if err := checkName(*r.Name); err != nil {
			return nil, err
		}
		name = *r.Name
	}
	peer := string(env[0])
	if typ, ok := s.sock.PeerType(env[0]); ok && typ == zmtp.REQ {
		return nil, badRequest("WATCH needs a DEALER socket: a REQ socket drops the events it did not ask for")
	}
	if len(s.watches) >= s.cfg.MaxWatches {
		return nil, &Error{Code: CodeLimit, Message: fmt.Sprintf("the server holds %d watches, its limit", s.cfg.MaxWatches)}
	}
	if len(s.peers[peer]) >= s.cfg.MaxWatchesPerPeer {
		return nil, &Error{Code: CodeLimit, Message: fmt.Sprintf("this connection holds %d watches, the limit per connection", s.cfg.MaxWatchesPerPeer)}
	}
	w := &watch{peer: peer, name: name, last: now, env: make([][]byte, len(env))}
	for i, f := range env {
		w.env[i] = append([]byte(nil), f...)
	}
	for w.id == "" || s.watches[w.id] != nil {
		w.id = "w" + randomHex(7)
	}
	s.watches[w.id] = w
	s.peers[peer] = append(s.peers[peer], w)
	if name == "" {
		s.watchAll[w] = struct{}{}
	} else {
		set := s.watchName[name]
		if set == nil {
			set = map[*watch]struct{}{}
			s.watchName[name] = set
		}
		set[w] = struct{}{}
	}
	rep := watchReply{Watch: w.id, Keepalive: s.cfg.WatchKeepalive.Seconds()}
	if name == "" {
		return rep, nil
	}
	return s.watchBody(rep, s.st.names[name]), nil
}

// watchBody is the WATCH reply of a name: rep's fields, then its entries
// (appendEntries).
func (s *Server) watchBody(rep watchReply, ns *nameSet) []byte {
	head, err := json.Marshal(rep) // no entries yet: {"watch":...,"keepalive":...}
	if err != nil {
		head = []byte(`{"watch":""}`)
	}
	b := append(s.listBuf[:0], head[:len(head)-1]...)
	b = append(appendEntries(append(b, `,"entries":`...), ns), '}')
	s.listBuf = b
	return b
}

func (s *Server) unwatch(r *request, peer string) (any, *Error) {
	if err := checkID("watch", r.Watch); err != nil {
		return nil, err
	}
	w := s.watches[r.Watch]
	if w == nil || w.peer != peer {
		return nil, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no watch %s on this connection", r.Watch)}
	}
	s.dropWatch(w)
	return struct {
		Removed int `json:"removed"`
	}{1}, nil
}

func (s *Server) dropWatch(w *watch) {
	delete(s.watches, w.id)
	if w.name == "" {
		delete(s.watchAll, w)
	} else if set := s.watchName[w.name]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(s.watchName, w.name)
		}
	}
	ws := slices.DeleteFunc(s.peers[w.peer], func(x *watch) bool { return x == w })
	if len(ws) == 0 {
		delete(s.peers, w.peer)
	} else {
		s.peers[w.peer] = ws
	}
}

// dropPeer forgets every watch of a peer that has gone.
func (s *Server) dropPeer(peer string) {
	for _, w := range slices.Clone(s.peers[peer]) {
		s.dropWatch(w)
	}
	s.log.Debug("registry: watcher gone", "peer", fmt.Sprintf("%x", peer))
}

// emit sends an event about e to every watch of its name and of all.
func (s *Server) emit(typ EventType, e *entry, now time.Time) {
	for w := range s.localWatches {
		w.push(s, typ, e)
	}
	set := s.watchName[e.Name]
	if len(set) == 0 && len(s.watchAll) == 0 {
		return
	}
	var gone []string
	for _, ws := range []map[*watch]struct{}{set, s.watchAll} {
		for w := range ws {
			w.seq++
			if s.sendEvent(w, typ, e.enc, now) {
				gone = append(gone, w.peer)
			}
		}
	}
	for _, p := range gone {
		s.dropPeer(p)
	}
	if len(gone) > 0 {
		s.updateGauges()
	}
}

// sendEvent sends one event; it reports whether the watcher's peer is gone.
func (s *Server) sendEvent(w *watch, typ EventType, enc []byte, now time.Time) (gone bool) {
	b := s.body[:0]
	b = append(b, `{"watch":"`...)
	b = append(b, w.id...)
	b = append(b, `","seq":`...)
	b = appendUint(b, w.seq)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if enc != nil {
		b = append(b, `,"entry":`...)
		b = append(b, enc...)
	}
	b = append(b, '}')
	s.body = b
	w.last = now
	err := s.send(w.env, statusEvent, b)
	switch {
	case err == nil:
		s.stats.events.Add(1)
	case errors.Is(err, zmtp.ErrHostUnreachable):
		return true
	case errors.Is(err, zmtp.ErrSlowConsumer): // cut off: gone too
		s.stats.eventsDropped.Add(1)
		return true
	default:
		s.stats.eventsDropped.Add(1)
	}
	return false
}

func appendUint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

// sweep removes the entries whose TTL ran out.
func (s *Server) sweep(now time.Time) {
	n := 0
	for e := s.st.expired(now); e != nil; e = s.st.expired(now) {
		n++
		s.stats.expired.Add(1)
		s.emit(EventExpire, e, now)
		s.localChanged(EventExpire, e, now)
	}
	if n > 0 {
		s.log.Debug("registry: expired", "entries", n)
		s.updateGauges()
	}
}

// keepalive sends a keepalive event on every watch idle for WatchKeepalive.
func (s *Server) keepalive(now time.Time) {
	var gone []string
	for _, w := range s.watches {
		if now.Sub(w.last) >= s.cfg.WatchKeepalive {
			if s.sendEvent(w, EventKeepalive, nil, now) {
				gone = append(gone, w.peer)
			}
		}
	}
	for _, p := range gone {
		s.dropPeer(p)
	}
	if len(gone) > 0 {
		s.updateGauges()
	}
}
