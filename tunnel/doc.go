// Package tunnel carries service information and all service traffic
// between two Hydra servers over one outbound encrypted connection
// (ARCHITECTURE.md, "Tunnels"; PROTOCOL.md, "Tunnels").
//
// The local server dials the remote's Hydra port (the port it shares with
// ZMTP, internal/portshare), runs a Noise IK handshake pinned to the
// remote's key (the remote checks ours against its allow-list), and runs a
// mux (yamux) session over it. The dialler opens one control stream on
// which each side sends the services it shares (control.go); every other
// stream carries one proxied TCP connection to one shared instance.
//
// Each side shares the instances Config.Export lets out (by default all
// but those bound to loopback); on the other, every instance learned that
// Config.Import lets in gets a proxy listener on Config.ProxyHost
// (127.0.0.1 by default) and is registered in the local registry under
// its own name, with the proxy's address: a lookup here returns the
// proxy, whose connections travel the tunnel (mux.Forwarder) to the far
// side, which dials the real service (mux.StreamServer): only instances it
// shares, never an address the stream names. Proxy listeners belong to the
// peer (its key), not to a session: they survive a redial, so addresses
// clients hold stay valid; their entries leave the registry as soon as the
// session ends and come back with the next. After Config.Grace without a
// session, when the peer says Bye (it shuts down), or when Run ends, the
// listeners close too, so proxy entries need no TTL of their own.
//
// A key Config.Allow refuses is told so (Refused) after the handshake;
// Recheck ends the tunnels of keys the Allow no longer accepts (after a
// reload of the allow-list).
//
// Tunnels sees the local registry through Registry (register, update,
// deregister, watch every entry), so the registry's loop holds no tunnel
// state. Entries a tunnel registers carry the Meta* keys; they are never
// shared again (no loops, no transit).
//
// New takes a Config (the zero value plus ServerID and Static works; every
// field documents its default) and a Registry; Run serves until its
// context ends. The package logs only through Config.Logger.
package tunnel
