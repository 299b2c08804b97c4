"""A pyzmq (libzmq) CURVE peer for secure's interop tests.

Run by curve_interop_test.go with the interpreter that imports zmq. It binds
(--bind, CURVE server) or connects (--connect, CURVE client), does what its
socket type does for --count messages, and reports on stdout, one line each:

  BOUND <endpoint>           a server is listening
  EVENT <name> <value>       a socket monitor event (handshakes, disconnects)
  MSG <hex>[,<hex>...]       a received message, frames in hex
  REPLY <hex>                a REQ client's reply
  TIMEOUT                    nothing arrived within --timeout-ms
  DONE                       finished

Messages to send are --send HEX[,HEX...] (repeatable); frames in hex.
"""
import argparse
import binascii
import os
import sys
import threading
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

EVENTS = {getattr(zmq, n): n[len("EVENT_"):] for n in dir(zmq) if n.startswith("EVENT_") and n not in ("EVENT_ALL",)}

out_lock = threading.Lock()


def say(*words):
    with out_lock:
        sys.stdout.write(" ".join(str(w) for w in words) + "\n")
        sys.stdout.flush()


def watch(sock, stop):
    mon = sock.get_monitor_socket()
    mon.setsockopt(zmq.RCVTIMEO, 100)
    while not stop.is_set():
        try:
            ev = recv_monitor_message(mon)
        except zmq.Again:
            continue
        except zmq.ZMQError:
            break
        say("EVENT", EVENTS.get(ev["event"], ev["event"]), ev["value"])
    mon.close(0)


def frames(arg):
    return [binascii.unhexlify(p) for p in arg.split(",")] if arg else [b""]


def hexmsg(parts):
    return ",".join(binascii.hexlify(p).decode() for p in parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--type", required=True)
    ap.add_argument("--bind")
    ap.add_argument("--connect")
    ap.add_argument("--public", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--server-key")
    ap.add_argument("--allow-dir", help="ZAP: allow the public certificates (*.key) in this directory")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--send", action="append", default=[])
    ap.add_argument("--subscribe")
    ap.add_argument("--heartbeat-ms", type=int, default=0)
    ap.add_argument("--timeout-ms", type=int, default=10000)
    a = ap.parse_args()

    ctx = zmq.Context()
    auth = None
    if a.allow_dir:
        from zmq.auth.thread import ThreadAuthenticator
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=a.allow_dir)

    s = ctx.socket(getattr(zmq, a.type))
    s.setsockopt(zmq.LINGER, 1000)
    s.curve_publickey = a.public.encode()
    s.curve_secretkey = a.secret.encode()
    if a.bind:
        s.curve_server = True
    else:
        s.curve_serverkey = a.server_key.encode()
    if a.heartbeat_ms:
        s.setsockopt(zmq.HEARTBEAT_IVL, a.heartbeat_ms)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        s.setsockopt(zmq.HEARTBEAT_TTL, 5000)
    if a.subscribe is not None:
        s.setsockopt(zmq.SUBSCRIBE, a.subscribe.encode())
    stop = threading.Event()
    mt = threading.Thread(target=watch, args=(s, stop), daemon=True)
    mt.start()
    time.sleep(0.05)  # let the monitor attach before anything happens

    if a.bind:
        s.bind(a.bind)
        say("BOUND", s.getsockopt(zmq.LAST_ENDPOINT).decode())
    else:
        s.connect(a.connect)

    poller = zmq.Poller()
    poller.register(s, zmq.POLLIN)

    def recv():
        if not poller.poll(a.timeout_ms):
            say("TIMEOUT")
            return None
        return s.recv_multipart()

    t = a.type
    if t == "REP":
        for _ in range(a.count):
            m = recv()
            if m is None:
                break
            say("MSG", hexmsg(m))
            s.send_multipart([b"re:" + m[0]] + m[1:])
    elif t == "REQ":
        for arg in a.send:
            s.send_multipart(frames(arg))
            m = recv()
            if m is None:
                break
            say("REPLY", hexmsg(m))
            time.sleep(0.05)  # spread the requests over several heartbeats
    elif t in ("PULL", "SUB"):
        for _ in range(a.count):
            m = recv()
            if m is None:
                break
            say("MSG", hexmsg(m))
    elif t == "PUSH":
        for arg in a.send:
            s.send_multipart(frames(arg))
    elif t == "PUB":
        deadline = time.time() + a.timeout_ms / 1000.0
        i = 0
        while time.time() < deadline and i < a.count:
            s.send(b"b%d" % i)
            s.send(b"a%d" % i)
            i += 1
            time.sleep(0.01)
    else:
        sys.exit("unknown type " + t)

    time.sleep(0.2)  # let late monitor events print
    stop.set()
    mt.join()
    say("DONE")
    s.close()
    if auth:
        auth.stop()
    ctx.term()


if __name__ == "__main__":
    main()
