"""PLAIN client (REQ) or server (REP) peer.

usage: plain.py client|server bind|connect ENDPOINT USER PASSWORD [ok|fail]

client uses USER/PASSWORD. With ok it sends [b"plain-hello"], expects
[b"ok", b"plain-hello"] and prints "DONE". With fail it sends the same, then
waits for the handshake to fail and prints "REFUSED <event> <value>", failing
if any handshake succeeds.

server is a PLAIN server whose ZAP handler (pyzmq's ThreadAuthenticator)
accepts USER/PASSWORD only. It answers every request with [b"ok", *request],
printing "REQ <first frame>"; on an authentication failure it prints
"REFUSED <event> <value>"; when stdin closes it prints "RECEIVED <n>".
"""
import sys

import zmq
from zmq.auth.thread import ThreadAuthenticator

from peerlib import Monitor, TIMEOUT_MS, attach, control_line, fail, new_socket, out

FAILED = ("HANDSHAKE_FAILED_AUTH", "HANDSHAKE_FAILED_PROTOCOL", "HANDSHAKE_FAILED_NO_DETAIL")


def main():
    role, mode, endpoint, user, password = sys.argv[1:6]
    expect = sys.argv[6] if len(sys.argv) > 6 else "ok"
    ctx = zmq.Context()
    if role == "client":
        s = new_socket(ctx, zmq.REQ, plain_username=user.encode(), plain_password=password.encode())
        mon = Monitor(s)
        attach(s, mode, endpoint)
        if expect == "ok":
            s.send_multipart([b"plain-hello"])
            got = s.recv_multipart()
            if got != [b"ok", b"plain-hello"]:
                fail("reply %r" % got)
            out("DONE")
        else:
            try:  # queued on a connecting socket; a bound one has no peer
                s.send_multipart([b"plain-hello"], zmq.NOBLOCK)
            except zmq.Again:
                pass
            # How libzmq 4.3.4 reports the refusal depends on the server's
            # ERROR command; any failure will do, success must not happen.
            name = mon.wait_for(FAILED + ("DISCONNECTED", "HANDSHAKE_SUCCEEDED"))
            if name == "HANDSHAKE_SUCCEEDED":
                fail("handshake succeeded with a wrong password")
            out("REFUSED", name, mon.values[name])
            if s.poll(0):
                fail("got a reply: %r" % s.recv_multipart())
            s.linger = 0  # the request can never leave
        mon.close()
    elif role == "server":
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_plain(domain="*", passwords={user: password})
        s = new_socket(ctx, zmq.REP, plain_server=True)
        mon = Monitor(s)
        attach(s, mode, endpoint)
        poller = zmq.Poller()
        poller.register(s, zmq.POLLIN)
        poller.register(mon.sock, zmq.POLLIN)
        poller.register(0, zmq.POLLIN)
        n = 0
        while True:
            ready = dict(poller.poll(TIMEOUT_MS))
            if not ready:
                fail("nothing happened for %d ms" % TIMEOUT_MS)
            if s in ready:
                msg = s.recv_multipart()
                out("REQ", msg[0].decode())
                s.send_multipart([b"ok"] + msg)
                n += 1
            if mon.sock in ready:
                for name in mon.poll(0):
                    if name in FAILED:
                        out("REFUSED", name, mon.values[name])
            if 0 in ready and control_line() in ("", "QUIT"):
                break
        out("RECEIVED", n)
        mon.close()
        auth.stop()
    else:
        fail("role %r" % role)
    s.close()
    ctx.term()


main()
