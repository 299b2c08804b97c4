"""PUSH or PULL peer.

usage: pushpull.py push|pull bind|connect ENDPOINT COUNT

push sends pushpull_msg(i) for i in 0..COUNT-1, prints "SENT COUNT" and
waits for stdin to close; pull checks that exactly those arrive, in order,
and prints "GOT COUNT".
"""
import sys

import zmq

from peerlib import control_line, fail, open_socket, out, pushpull_msg


def main():
    role, mode, endpoint, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ctx = zmq.Context()
    if role == "push":
        s = open_socket(ctx, zmq.PUSH, mode, endpoint)
        for i in range(count):
            s.send_multipart(pushpull_msg(i))
        out("SENT", count)
        control_line()
    elif role == "pull":
        s = open_socket(ctx, zmq.PULL, mode, endpoint)
        for i in range(count):
            got = s.recv_multipart()
            if got != pushpull_msg(i):
                fail("message %d: %r" % (i, [f[:40] for f in got]))
        out("GOT", count)
    else:
        fail("role %r" % role)
    s.close()
    ctx.term()


main()
