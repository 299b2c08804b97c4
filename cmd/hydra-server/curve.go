package main

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// serverSecurity is the ZMTP port's mechanism: CURVE with this server's key
// when --curve is set (nil: NULL). Its own key is always allowed, so that
// the server's tunnels can be its clients.
func (ts *tunnelSetup) serverSecurity() func() zmtp.Mechanism {
	if ts == nil || !ts.curve {
		return nil
	}
	own := ts.kp.Public
	auth := ts.cfg.Allow
	return curve.Server(ts.kp, secure.AuthorizerFunc(func(k secure.PublicKey) bool {
		return k == own || auth != nil && auth.Authorize(k)
	}))
}

// joinSecurity makes the CURVE client of each --join link, with the key
// given for that peer (--join-key, in the order of --join). Peers joined at
// run time have no key here: they are dialled with NULL, which a CURVE
// server refuses.
func (ts *tunnelSetup) joinSecurity(peers, keys []string) (func(addr string) func() zmtp.Mechanism, error) {
	if ts == nil || !ts.curve {
		if len(keys) > 0 {
			return nil, usagef("--join-key needs --curve (and --key-file)")
		}
		return nil, nil
	}
	if len(keys) != len(peers) {
		return nil, usagef("%d --join and %d --join-key: with --curve, give each joined server's public key, in the same order", len(peers), len(keys))
	}
	byAddr := map[string]secure.PublicKey{}
	for i, k := range keys {
		pub, err := secure.ParsePublicKey(k)
		if err != nil {
			return nil, usagef("--join-key %q: %v", k, err)
		}
		byAddr[peers[i]] = pub
	}
	kp := ts.kp
	return func(addr string) func() zmtp.Mechanism {
		if pub, ok := byAddr[addr]; ok {
			return curve.Client(kp, pub)
		}
		return nil
	}, nil
}

// reload re-reads --allow-file (on SIGHUP).
func (ts *tunnelSetup) reload(log *slog.Logger) {
	if ts == nil || ts.allow == nil {
		log.Info("SIGHUP: no --allow-file to reload")
		return
	}
	if err := ts.allow.Reload(); err != nil {
		log.Error("SIGHUP: allow-list not reloaded; the old one stays", "file", ts.allow.Path(), "err", err)
		return
	}
	log.Info("SIGHUP: allow-list reloaded", "file", ts.allow.Path(), "keys", ts.allow.Len())
}

// clientKeyFlags are the client commands' CURVE flags, for a server run
// with --curve.
type clientKeyFlags struct {
	serverKey string
	keyFile   string
}

func (f *clientKeyFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.serverKey, "server-key", "", "the server's public `key` (Z85): talk CURVE to a server run with --curve")
	fs.StringVar(&f.keyFile, "key-file", "", "this client's key pair `file` for CURVE (default: a fresh key, which only a server with --allow-any-key accepts)")
}

// security is the client's mechanism: nil (NULL) without --server-key.
func (f *clientKeyFlags) security() (func() zmtp.Mechanism, error) {
	if f.serverKey == "" {
		if f.keyFile != "" {
			return nil, usagef("--key-file needs --server-key")
		}
		return nil, nil
	}
	pub, err := secure.ParsePublicKey(f.serverKey)
	if err != nil {
		return nil, usagef("--server-key %q: %v", f.serverKey, err)
	}
	var kp secure.KeyPair
	if f.keyFile != "" {
		kp, err = secure.LoadKeyPair(f.keyFile)
	} else {
		kp, err = secure.GenerateKeyPair()
	}
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	return curve.Client(kp, pub), nil
}
