package registry

import (
	"context"
	"encoding/json"
	"fmt"
)

// Join asks the server to join another server, peer (HOST, HOST:PORT or
// tcp://HOST:PORT), at run time. It returns the peer's HOST:PORT and
// whether the server was not joining it already. The server dials in the
// background: INFO's "join" object shows when the link is up.
func (c *Client) Join(ctx context.Context, peer string) (addr string, isNew bool, err error) {
	b, err := c.Request(ctx, VerbJoin, map[string]string{"peer": peer})
	if err != nil {
		return "", false, err
	}
	var r struct {
		Peer string `json:"peer"`
		New  bool   `json:"new"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", false, fmt.Errorf("registry: JOIN reply: %w", err)
	}
	return r.Peer, r.New, nil
}

// Leave asks the server to stop dialling peer (HOST[:PORT], as Join took
// it) and drop its link: LEAVE. It returns the HOST:PORT left.
func (c *Client) Leave(ctx context.Context, peer string) (addr string, err error) {
	b, err := c.Request(ctx, VerbLeave, map[string]string{"peer": peer})
	if err != nil {
		return "", err
	}
	var r struct {
		Peer string `json:"peer"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("registry: LEAVE reply: %w", err)
	}
	return r.Peer, nil
}
