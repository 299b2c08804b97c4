"""libzmq PUSH->PULL throughput through pyzmq, NULL or CURVE, as the
baseline of secure's TestCurveVsLibzmq. Two processes:

  curve_bench.py pull --bind tcp://127.0.0.1:0 --count N --size S [--server-public K --server-secret K]
      prints "BOUND <endpoint>", then after N messages one JSON line:
      {"msgs": N, "size": S, "seconds": T, "msgs_per_s": ..., "mb_per_s": ...}
      timed from the first message received to the last (as bench/ does).
  curve_bench.py push --connect EP --count N --size S [--client-public K --client-secret K --server-public K]
"""
import argparse
import json
import sys
import time

import zmq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["push", "pull"])
    ap.add_argument("--bind")
    ap.add_argument("--connect")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--server-public")
    ap.add_argument("--server-secret")
    ap.add_argument("--client-public")
    ap.add_argument("--client-secret")
    a = ap.parse_args()

    ctx = zmq.Context()
    if a.role == "pull":
        s = ctx.socket(zmq.PULL)
        s.setsockopt(zmq.RCVHWM, 100000)
        if a.server_secret:
            s.curve_server = True
            s.curve_publickey = a.server_public.encode()
            s.curve_secretkey = a.server_secret.encode()
        s.bind(a.bind)
        print("BOUND", s.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
        big = a.size > 8192
        s.recv(copy=not big)
        t0 = time.perf_counter()
        recv = s.recv
        for _ in range(a.count - 1):
            recv(copy=not big)
        dt = time.perf_counter() - t0
        n = a.count - 1
        print(json.dumps({"msgs": n, "size": a.size, "seconds": dt,
                          "msgs_per_s": n / dt, "mb_per_s": n * a.size / dt / 1e6}), flush=True)
    else:
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, 100000)
        s.setsockopt(zmq.LINGER, 30000)
        if a.client_secret:
            s.curve_publickey = a.client_public.encode()
            s.curve_secretkey = a.client_secret.encode()
            s.curve_serverkey = a.server_public.encode()
        s.connect(a.connect)
        msg = b"x" * a.size
        frame = zmq.Frame(msg)
        big = a.size > 8192
        send = s.send
        for _ in range(a.count):
            if big:
                send(frame, copy=False)
            else:
                send(msg)
    s.close()
    ctx.term()


if __name__ == "__main__":
    main()
