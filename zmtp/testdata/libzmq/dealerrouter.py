"""DEALER or ROUTER peer.

usage: dealerrouter.py dealer|router bind|connect ENDPOINT [options]

dealer (with --id as ZMQ_ROUTING_ID) sends [b"hello", b"<i>"] --rounds times,
sleeping --pause seconds before each but the first, and expects the reply
[b"reply", b"hello", b"<i>", <its own id>]; it prints "REPLY i", then "DONE n".

router answers every message [id, *body] with [id, b"reply", *body, id],
printing "MSG <id hex> <frames in body>", until the body is [b"quit"] or
stdin closes.

--heartbeat IVL,TTL,TIMEOUT sets ZMQ_HEARTBEAT_IVL/TTL/TIMEOUT (ms).
--monitor prints "EVENTS name=count ..." of the socket's monitor at the end.
"""
import argparse
import time

import zmq

from peerlib import Monitor, attach, fail, new_socket, out, serve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["dealer", "router"])
    ap.add_argument("mode")
    ap.add_argument("endpoint")
    ap.add_argument("--id", default="")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pause", type=float, default=0)
    ap.add_argument("--heartbeat", default="")
    ap.add_argument("--monitor", action="store_true")
    a = ap.parse_args()

    opts = {}
    if a.id:
        opts["routing_id"] = a.id.encode()
    if a.heartbeat:
        ivl, ttl, timeout = (int(x) for x in a.heartbeat.split(","))
        opts.update(heartbeat_ivl=ivl, heartbeat_ttl=ttl, heartbeat_timeout=timeout)
    ctx = zmq.Context()
    s = new_socket(ctx, zmq.DEALER if a.role == "dealer" else zmq.ROUTER, **opts)
    mon = Monitor(s) if a.monitor else None
    attach(s, a.mode, a.endpoint)

    if a.role == "dealer":
        for i in range(a.rounds):
            if i > 0 and a.pause:
                time.sleep(a.pause)
            s.send_multipart([b"hello", b"%d" % i])
            got = s.recv_multipart()
            want = [b"reply", b"hello", b"%d" % i, a.id.encode()]
            if got[:3] != want[:3] or a.id and got != want:
                fail("reply %d: %r" % (i, got))
            out("REPLY", i)
        out("DONE", a.rounds)
    else:
        def handle(msg):
            ident, body = msg[0], msg[1:]
            out("MSG", ident.hex(), len(body))
            if body == [b"quit"]:
                return False
            s.send_multipart([ident, b"reply"] + body + [ident])
            return True

        serve(s, handle)
    if mon:
        out("EVENTS", mon.summary())
        mon.close()
    s.close()
    ctx.term()


main()
