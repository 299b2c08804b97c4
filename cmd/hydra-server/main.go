// Command hydra-server runs the Hydra service registry.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hydra-net/hydra/zmtp"
)

func main() {
	sock, err := zmtp.NewSocket(zmtp.ROUTER, zmtp.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := sock.Bind("tcp://127.0.0.1:8420"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("[Hydra Server] Bound to 127.0.0.1:8420")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	sock.Close()
}
