module github.com/hydra-net/hydra

go 1.26.8

require (
	github.com/go-zeromq/zmq4 v0.17.0
	github.com/miekg/dns v1.1.73
)

require golang.org/x/net v0.62.0 // indirect

require (
	github.com/flynn/noise v1.1.0
	github.com/go-zeromq/goczmq/v4 v4.2.2 // indirect
	github.com/hashicorp/yamux v0.1.2
	github.com/peterbourgon/ff/v3 v3.4.0
	golang.org/x/crypto v0.59.0
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.50.0
	golang.org/x/text v0.44.0 // indirect
)
