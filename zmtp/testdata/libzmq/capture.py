"""A libzmq peer whose handshake zmtp's TestCaptureLibzmqHandshakes records.

usage: capture.py req|sub|plain ENDPOINT

req connects a REQ socket and sends [b"hello"]; sub connects a SUB socket
subscribed to b"topic"; plain is req with PLAIN credentials admin/secret.
Each then waits for stdin to close.
"""
import sys

import zmq

from peerlib import control_line, fail, open_socket


def main():
    role, endpoint = sys.argv[1], sys.argv[2]
    ctx = zmq.Context()
    if role == "req":
        s = open_socket(ctx, zmq.REQ, "connect", endpoint)
        s.send_multipart([b"hello"])
    elif role == "plain":
        s = open_socket(ctx, zmq.REQ, "connect", endpoint, plain_username=b"admin", plain_password=b"secret")
        s.send_multipart([b"hello"])
    elif role == "sub":
        s = open_socket(ctx, zmq.SUB, "connect", endpoint)
        s.subscribe(b"topic")
    else:
        fail("role %r" % role)
    control_line()
    s.linger = 0
    s.close()
    ctx.term()


main()
