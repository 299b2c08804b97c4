module github.com/hydra-net/hydra

go 1.26.8

require (
	github.com/go-zeromq/zmq4 v0.17.0
	github.com/prometheus/client_model v0.6.3
)

require (
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pandatix/go-abnf v0.5.5 // indirect
	github.com/prometheus/common v0.74.0
	google.golang.org/protobuf v1.36.12 // indirect
)

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
