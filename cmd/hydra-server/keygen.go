package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/hydra-net/hydra/secure"
)

func init() {
	addCommand(&command{name: "keygen", args: "[--out FILE] [--force] [--public]", short: "write this server's Curve25519 key pair (Z85, as libzmq's zmq_curve_keypair)", run: keygenCmd})
}

const keygenHelp = `
Generates a Curve25519 key pair, the one identity of a server for CURVE on
ZMTP links and Noise on tunnels. The secret key goes to FILE (mode 0600),
the public key to FILE.pub (mode 0644); both are ZeroMQ certificates with
keys Z85-encoded exactly as libzmq's zmq_curve_keypair does (40 characters).
Prints the public key, which peers pin (--remote-key) or put on the list of
its role (--allow-tunnels, --allow-clients, --allow-servers, --allow-admins).
FILE.pub also holds the server's signing key (sign-key, Ed25519, derived
from the secret key), with which joined servers check the records of its
origin. Refuses to overwrite an existing file without --force. Use the file
with --key-file.

With --public, writes FILE.pub again from the existing FILE (a KEY.pub
made before signing keys existed lacks sign-key) and changes nothing else.`

func keygenCmd(_ context.Context, io stdio, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "hydra.key", "secret key `file` to write (the public key goes to FILE.pub)")
	force := fs.Bool("force", false, "overwrite existing key files")
	public := fs.Bool("public", false, "write FILE.pub again from the existing secret key FILE (adds its sign-key)")
	pos, err := parse(fs, nil, args, true) // flags only: no HYDRA_* variables, no --config
	if errors.Is(err, flag.ErrHelp) {
		printUsage(io.out, "hydra-server keygen [--out FILE] [--force] [--public]", keygenHelp, fs)
		return err
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("keygen: unexpected argument %q (the file goes with --out)", pos[0])
	}
	if *public {
		pub, sign, err := secure.RewritePublicKey(*out)
		if err != nil {
			return fmt.Errorf("keygen --public: %w", err)
		}
		fmt.Fprintf(io.out, "public key %s\nsign key %s\npublic key written to %s\n", pub, sign, secure.PublicKeyPath(*out))
		return nil
	}
	kp, err := secure.Keygen(*out, *force)
	if errors.Is(err, secure.ErrKeyExists) {
		existing := *out
		if _, serr := os.Lstat(existing); serr != nil {
			existing = secure.PublicKeyPath(*out)
		}
		return fmt.Errorf("keygen: %s exists: use --force to overwrite it, or --out to write elsewhere", existing)
	}
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	defer kp.Zero()
	sg := kp.Signer()
	defer sg.Zero()
	fmt.Fprintf(io.out, "public key %s\nsign key %s\nsecret key written to %s, public key to %s\n", kp.Public, sg.Public, *out, secure.PublicKeyPath(*out))
	return nil
}
