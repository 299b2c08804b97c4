// Package secure gives a Hydra server its identity: one Curve25519 key
// pair per server, its key files, and allow-lists of peer keys. Both
// kinds of encrypted link use them: CURVE on ZMTP links (package
// zmtp/curve) and Noise on tunnels (package secure/noise).
//
// GenerateKeyPair makes a key pair as libzmq's zmq_curve_keypair does, and
// keys print as 40-character Z85 (spec 32), the form libzmq and pyzmq use.
// WriteKeyPair and LoadKeyPair keep them in czmq/pyzmq certificate files
// (the secret one mode 0600, refused if other users can read it; pyzmq's
// zmq.auth.load_certificate reads ours and we read its). LoadAllowList
// reads a file of public keys and Reload re-reads it (on SIGHUP; a bad
// file keeps the old list); a server runs one list per role (node.Access).
// LoadServerList reads a servers' list, whose every key comes with that
// server's signing key (a KEY.pub's sign-key line, or "CURVEZ85 SIGNZ85"):
// TrustsSigner tells join whose signed origin records to take. An Authorizer decides which peer keys may
// connect: an *AllowList, or AllowAny, which has to be asked for by name;
// a nil Authorizer refuses everyone (Authorized is the nil-safe check the
// mechanisms use). Public keys compare in constant time; secret keys never
// print and are zeroed after use.
package secure
