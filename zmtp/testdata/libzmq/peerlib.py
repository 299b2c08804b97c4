"""Helpers shared by the libzmq peer scripts of zmtp's interop tests.

Each script is one libzmq peer (pyzmq on libzmq 4.3.4). It prints result
lines on stdout for the Go test to check, prints "FAIL <why>" and exits 1 on
any mismatch, and treats stdin as a control channel: the Go test writes
command lines to it and closes it when the peer may finish.
"""
import sys

import zmq
from zmq.utils.monitor import recv_monitor_message

TIMEOUT_MS = 15000  # every blocking call fails rather than hangs


def out(*words):
    print(*words, flush=True)


def fail(why):
    out("FAIL", why)
    sys.exit(1)


def control_line():
    """The next control line from the Go test; "" once stdin is closed."""
    # Unbuffered, so a poll on fd 0 never misses a line already read ahead.
    return sys.stdin.buffer.raw.readline().decode().strip()


def new_socket(ctx, kind, **options):
    """A socket with test-friendly defaults and the given options set
    (pyzmq attribute names: routing_id, heartbeat_ivl, plain_server, ...)."""
    s = ctx.socket(kind)
    s.linger = 5000
    s.rcvtimeo = TIMEOUT_MS
    s.sndtimeo = TIMEOUT_MS
    for name, value in options.items():
        setattr(s, name, value)
    return s


def attach(s, mode, endpoint):
    """Binds s (printing "ENDPOINT <actual endpoint>", for tcp://...:*) or
    connects it."""
    if mode == "bind":
        s.bind(endpoint)
        out("ENDPOINT", s.last_endpoint.decode())
    elif mode == "connect":
        s.connect(endpoint)
    else:
        fail("mode must be bind or connect, not %r" % mode)
    return s


def open_socket(ctx, kind, mode, endpoint, **options):
    return attach(new_socket(ctx, kind, **options), mode, endpoint)


def serve(sock, handle):
    """Calls handle(frames) for every message on sock until stdin closes,
    a "QUIT" control line arrives or handle returns False."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(0, zmq.POLLIN)
    while True:
        ready = dict(poller.poll(TIMEOUT_MS))
        if not ready:
            fail("nothing happened for %d ms" % TIMEOUT_MS)
        if sock in ready and handle(sock.recv_multipart()) is False:
            return
        if 0 in ready and control_line() in ("", "QUIT"):
            return


class Monitor:
    """Counts a socket's monitor events by name (CONNECTED, ACCEPTED,
    DISCONNECTED, HANDSHAKE_SUCCEEDED, HANDSHAKE_FAILED_AUTH, ...)."""

    def __init__(self, sock):
        self.owner = sock
        self.sock = sock.get_monitor_socket()
        self.counts = {}
        self.values = {}

    def poll(self, timeout_ms=0):
        """Records the events that arrive within timeout_ms; returns the
        names of those seen."""
        seen = []
        while self.sock.poll(timeout_ms):
            ev = recv_monitor_message(self.sock)
            name = zmq.Event(ev["event"]).name
            self.counts[name] = self.counts.get(name, 0) + 1
            self.values[name] = ev["value"]
            seen.append(name)
            timeout_ms = 0
        return seen

    def wait_for(self, names, timeout_ms=TIMEOUT_MS):
        """Waits for the first event among names; returns its name."""
        while True:
            for name in self.poll(timeout_ms):
                if name in names:
                    return name

    def summary(self):
        self.poll(0)
        return " ".join("%s=%d" % kv for kv in sorted(self.counts.items()))

    def close(self):
        """Stops monitoring; needed before the context can terminate."""
        self.owner.disable_monitor()
        self.sock.close(linger=0)


def pushpull_msg(i):
    """Message i of the PUSH/PULL streams (zmtp's Go test builds the same):
    small, empty, multipart, long (> 255 bytes) and 1 MiB frames."""
    seq = b"%d" % i
    if i % 1000 == 999:
        return [seq, bytes([i % 251]) * (1 << 20)]
    k = i % 10
    if k == 3:
        return [seq, b""]
    if k == 5:
        return [seq, b"a", b"", b"c" * 300]
    if k == 7:
        return [b""]
    return [seq, b"msg-%d" % i]


def request_msg(i):
    """Request i of the REQ/REP exchanges: multipart, with an empty frame
    inside the body and a last frame growing past 255 bytes."""
    return [b"req", b"%d" % i, b"", b"x" * (i * 100)]
