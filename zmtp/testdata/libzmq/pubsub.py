"""PUB, SUB or XSUB peer.

usage: pubsub.py pub|sub|xsub bind|connect ENDPOINT COUNT

The stream, from either side: [b"weather.sync"] until the subscriber is seen
to get it, then for i in 0..COUNT-1 [b"news.<i>", b"x"] and
[b"weather.<i>", b"payload-<i>"], then [b"weather.end"].

sub subscribes to b"weather." and b"alerts."; xsub sends the subscription
b"\\x01weather." as a message and, having no filter of its own, proves the
publisher filtered. Both print "SYNC" at the first message, then check that
exactly weather.0..COUNT-1 arrive, in order, and print "GOT COUNT".

pub publishes weather.sync until the control line "GO", then the stream,
prints "SENT COUNT" and waits for stdin to close.
"""
import sys

import zmq

from peerlib import control_line, fail, open_socket, out


def main():
    role, mode, endpoint, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ctx = zmq.Context()
    if role == "pub":
        s = open_socket(ctx, zmq.PUB, mode, endpoint, sndhwm=0)
        poller = zmq.Poller()
        poller.register(0, zmq.POLLIN)
        for _ in range(1000):  # 20 s at most
            s.send_multipart([b"weather.sync"])
            if poller.poll(20):
                if control_line() != "GO":
                    fail("want GO")
                break
        else:
            fail("no GO")
        for i in range(count):
            s.send_multipart([b"news.%d" % i, b"x"])
            s.send_multipart([b"weather.%d" % i, b"payload-%d" % i])
        s.send_multipart([b"weather.end"])
        out("SENT", count)
        control_line()
    elif role in ("sub", "xsub"):
        if role == "sub":
            s = open_socket(ctx, zmq.SUB, mode, endpoint, rcvhwm=0)
            s.subscribe(b"weather.")
            s.subscribe(b"alerts.")
        else:
            s = open_socket(ctx, zmq.XSUB, mode, endpoint, rcvhwm=0)
            s.send(b"\x01weather.")
        synced, n = False, 0
        while True:
            msg = s.recv_multipart()
            if not msg[0].startswith(b"weather."):
                fail("topic not subscribed to: %r" % msg)
            if not synced:
                out("SYNC")
                synced = True
            if msg == [b"weather.sync"]:
                if n:
                    fail("sync after data")
                continue
            if msg == [b"weather.end"]:
                break
            if msg != [b"weather.%d" % n, b"payload-%d" % n]:
                fail("message %d: %r" % (n, msg))
            n += 1
        if n != count:
            fail("got %d of %d" % (n, count))
        out("GOT", n)
    else:
        fail("role %r" % role)
    s.close()
    ctx.term()


main()
