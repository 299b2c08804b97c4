package main

import (
	"flag"
	"fmt"

	"github.com/hydra-net/hydra/secure"
	"github.com/hydra-net/hydra/zmtp"
	"github.com/hydra-net/hydra/zmtp/curve"
)

// clientKeyFlags are the client commands' CURVE flags, for a server run
// with --curve.
type clientKeyFlags struct {
	serverKey string
	keyFile   string
	pub       secure.PublicKey // this client's public key, once security ran
}

func (f *clientKeyFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.serverKey, "server-key", "", "the server's public `key`: its Z85 text (in single quotes) or its KEY.pub file; talk CURVE to a server run with --curve")
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
// when it is a fresh one (no --key-file).
func (f *clientKeyFlags) publicKey() (string, string) {
	if f.keyFile == "" {
		return f.pub.String(), ", or pass --key-file with a key pair whose public key is on it (without --key-file each run makes a fresh key)"
	}
	return f.pub.String(), ""
}
