#!/bin/sh
# One bulk TCP stream through a Hydra tunnel (two hydra-server processes on
# loopback) vs raw TCP vs OpenSSH ssh -L (chacha20-poly1305, aes128-gcm),
# in the same run, then the same over a delaying relay (100 ms round trip
# by default). Needs openssh-server and openssh-client for the ssh rows.
#
#   bench/tunnel.sh                      # 3s per stream, 100ms long link
#   bench/tunnel.sh -duration 5s -rtt 50ms,100ms
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/hydra-server
trap 'rm -rf "$(dirname "$bin")"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/hydra-server
go run ./bench/tunnelbench -hydra "$bin" "$@"
