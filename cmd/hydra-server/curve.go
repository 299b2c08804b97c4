package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// accessFlags are the server's key and role flags (serve.go defines them):
// this server's key file, CURVE or plaintext on the ZMTP port, and one
// list of keys per role (node.Access; SECURITY.md).
type accessFlags struct {
	keyFile   string
	curve     bool
	plaintext bool
	clients   string
	anyClient bool
	servers   string
	tunnels   string
	admins    string
	joinAllow listFlag
}

func (f *accessFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.keyFile, "key-file", "", "this server's secret key `file` (hydra-server keygen; zcert format): its identity on tunnels and on the CURVE port; with it and a --host beyond loopback the ZMTP port runs CURVE unless --plaintext")
	fs.BoolVar(&f.curve, "curve", false, "run CURVE on the ZMTP port (needs --key-file); the default when --host is beyond loopback: then each peer needs this server's public key and its own key on --allow-clients, --allow-servers or --allow-admins")
	fs.BoolVar(&f.plaintext, "plaintext", false, "run the ZMTP port in plaintext (NULL) even with --key-file and a --host beyond loopback: whoever reaches the port may register and look up services; for trusted networks only")
	fs.StringVar(&f.clients, "allow-clients", "", "with CURVE: `file` of the public keys of registry clients (Z85, one a line, or keygen's KEY.pub content): they may register, look up and watch, nothing else; SIGHUP re-reads it")
	fs.BoolVar(&f.anyClient, "allow-any-client", false, "with CURVE: accept any client key (encryption without client authorization; instead of --allow-clients)")
	fs.StringVar(&f.servers, "allow-servers", "", "`file` of the servers that may join this one (with CURVE; without, join links are taken by address) and whose signed entries it trusts: each server's KEY.pub content, or a line 'CURVEKEY SIGNKEY'; SIGHUP re-reads it")
	fs.StringVar(&f.tunnels, "allow-tunnels", "", "`file` of the public keys of servers allowed to open tunnels to this one (Z85, one a line, or KEY.pub content); without it inbound tunnels are refused; SIGHUP re-reads it and closes the tunnels of removed keys")
	fs.StringVar(&f.admins, "allow-admins", "", "with CURVE: `file` of the public keys allowed run-time control (hydra-server join, leave); without CURVE only loopback peers are admins; SIGHUP re-reads it")
	fs.Var(&f.joinAllow, "join-allow", "without CURVE: join links may come from this `ADDR|CIDR` too, besides the --join peers' own addresses (repeatable); other peers sending join traffic are refused")
}

// removedFlags are flags that exist no more, with what replaces them:
// the command line, $HYDRA_* and the config file name the replacement
// instead of failing as unknown (usage.go asks removedFlag).
var removedFlags = map[string]string{
	"allow-file":    "--allow-file was one list for every role; each role has its own now: --allow-tunnels FILE (servers that may tunnel here), --allow-clients FILE (CURVE registry clients), --allow-servers FILE (joining servers), --allow-admins FILE (see SECURITY.md)",
	"allow-any-key": "--allow-any-key is gone: --allow-any-client accepts any CURVE client key; tunnels and joining servers always need a key on --allow-tunnels or --allow-servers",
}

// clientRemovedFlags are the client commands' removed flags.
var clientRemovedFlags = map[string]string{
	"key-file": "--key-file is the server's key; a client command's own key pair is --client-key FILE (so that a config file shared with the server never makes its key the client's)",
}

// removedFlag explains a removed flag name, "" if it is not one. server
// says whose flags: the server's or a client command's.
func removedFlag(fs *flag.FlagSet, name string) string {
	if m, ok := removedFlags[name]; ok {
		return m
	}
	if fs.Lookup("server-key") != nil { // a client command
		return clientRemovedFlags[name]
	}
	return ""
}

// checkRemovedEnv fails on a $HYDRA_* variable of a removed flag: left
// alone it would be ignored, and a server silently without its allow-list.
func checkRemovedEnv() error {
	for name, m := range removedFlags {
		if v := envVar(name); os.Getenv(v) != "" {
			return usagef("$%s: %s", v, m)
		}
	}
	return nil
}

// curveOn is whether the ZMTP port runs CURVE: asked for, or the default
// with a key file and a tcp bind beyond loopback (no silent open
// registry), unless --plaintext.
func (f *accessFlags) curveOn(host, proto string) bool {
	return f.curve || (f.keyFile != "" && !f.plaintext && proto == "tcp" && !loopback(host))
}

// apply loads the key file and the role lists into cfg.
func (f *accessFlags) apply(cfg *node.Config, host, proto string) error {
	if err := checkRemovedEnv(); err != nil {
		return err
	}
	if f.curve && f.plaintext {
		return usagef("--curve and --plaintext exclude each other")
	}
	if f.anyClient && f.clients != "" {
		return usagef("--allow-any-client and --allow-clients exclude each other")
	}
	for _, p := range f.joinAllow {
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			ip, aerr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"))
			if aerr != nil {
				return usagef("--join-allow %q: want an IP address or a CIDR prefix (10.0.0.0/24)", p)
			}
			pf = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		}
		cfg.Access.ServerAddrs = append(cfg.Access.ServerAddrs, pf.Masked())
	}
	if f.keyFile == "" {
		for _, s := range []struct {
			set  bool
			flag string
		}{{f.curve, "--curve"}, {f.anyClient, "--allow-any-client"}, {f.clients != "", "--allow-clients"},
			{f.servers != "", "--allow-servers"}, {f.tunnels != "", "--allow-tunnels"}, {f.admins != "", "--allow-admins"}} {
			if s.set {
				return usagef("%s needs --key-file (this server's key pair; hydra-server keygen makes one)", s.flag)
			}
		}
		return nil
	}
	kp, err := secure.LoadKeyPair(f.keyFile)
	if err != nil {
		return err
	}
	cfg.Keys, cfg.Curve = &kp, f.curveOn(host, proto)
	load := func(flag, path string, servers bool) (secure.Authorizer, error) {
		if path == "" {
			return nil, nil
		}
		var al *secure.AllowList
		if servers {
			al, err = secure.LoadServerList(path)
		} else {
			al, err = secure.LoadAllowList(path)
		}
		if err != nil {
			return nil, usagef("%s: %v", flag, err)
		}
		return al, nil
	}
	a := &cfg.Access
	if a.Clients, err = load("--allow-clients", f.clients, false); err != nil {
		return err
	}
	if f.anyClient {
		a.Clients = secure.AllowAny()
	}
	if a.Servers, err = load("--allow-servers", f.servers, true); err != nil {
		return err
	}
	if a.Tunnels, err = load("--allow-tunnels", f.tunnels, false); err != nil {
		return err
	}
	if a.Admins, err = load("--allow-admins", f.admins, false); err != nil {
		return err
	}
	return nil
}

// clientKeyFlags are the client commands' CURVE flags, for a server run
// with CURVE. The client's own key is --client-key, never --key-file: a
// config file shared with the server has the server's key-file, which
// must not become the client's identity by accident.
type clientKeyFlags struct {
	serverKey string
	keyFile   string
	pub       secure.PublicKey // this client's public key, once security ran
}

func (f *clientKeyFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.serverKey, "server-key", "", "the server's public `key`: its Z85 text (in single quotes) or its KEY.pub file; talk CURVE to a server that runs it")
	fs.StringVar(&f.keyFile, "client-key", "", "this client's key pair `file` for CURVE (hydra-server keygen; default: a fresh key, which only a server with --allow-any-client accepts)")
}

// security is the client's mechanism: nil (NULL) without --server-key.
func (f *clientKeyFlags) security() (func() zmtp.Mechanism, error) {
	if f.serverKey == "" {
		if f.keyFile != "" {
			return nil, usagef("--client-key needs --server-key")
		}
		return nil, nil
	}
	pub, err := secure.ReadPublicKey(f.serverKey)
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
	f.pub = kp.Public
	return curve.Client(kp, pub), nil
}

// publicKey is this client's public key for an error message, and advice
// when it is a fresh one (no --client-key).
func (f *clientKeyFlags) publicKey() (string, string) {
	if f.keyFile == "" {
		return f.pub.String(), ", or pass --client-key with a key pair whose public key is on it (without --client-key each run makes a fresh key)"
	}
	return f.pub.String(), ""
}
