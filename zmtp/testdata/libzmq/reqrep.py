"""REQ or REP peer.

usage: reqrep.py req|rep bind|connect ENDPOINT ROUNDS

req sends request_msg(i) for i in 0..ROUNDS-1 and expects [b"ok"] + request
back, printing "REPLY i" each time; rep answers ROUNDS requests that way,
checking each is request_msg(i). Both print "DONE ROUNDS" at the end.
"""
import sys

import zmq

from peerlib import fail, open_socket, out, request_msg


def main():
    role, mode, endpoint, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ctx = zmq.Context()
    if role == "req":
        s = open_socket(ctx, zmq.REQ, mode, endpoint)
        for i in range(rounds):
            s.send_multipart(request_msg(i))
            got = s.recv_multipart()
            if got != [b"ok"] + request_msg(i):
                fail("reply %d: %r" % (i, [f[:40] for f in got]))
            out("REPLY", i)
    elif role == "rep":
        s = open_socket(ctx, zmq.REP, mode, endpoint)
        for i in range(rounds):
            got = s.recv_multipart()
            if got != request_msg(i):
                fail("request %d: %r" % (i, [f[:40] for f in got]))
            s.send_multipart([b"ok"] + got)
    else:
        fail("role %r" % role)
    out("DONE", rounds)
    s.close()
    ctx.term()


main()
