package zmtp

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.SendHWM != DefaultHWM || c.RecvHWM != DefaultHWM || c.Linger != DefaultLinger ||
		c.MaxMsgSize != DefaultMaxMsgSize || c.HandshakeTimeout != DefaultHandshakeTimeout ||
		c.ReconnectInterval != DefaultReconnectInterval || c.ReconnectIntervalMax != DefaultReconnectIntervalMax ||
		c.HeartbeatTimeout != 0 || c.Logger == nil || c.Security == nil {
		t.Fatalf("defaults: %+v", c)
	}
	hb := Config{HeartbeatInterval: time.Second}.withDefaults()
	if hb.HeartbeatTimeout != DefaultHeartbeatTimeoutFactor*time.Second || hb.HeartbeatTTL != hb.HeartbeatTimeout {
		t.Fatalf("heartbeat defaults: %+v", hb)
	}
	if r := (Config{ReconnectInterval: 10 * time.Second}).withDefaults(); r.ReconnectIntervalMax != 10*time.Second {
		t.Fatalf("ReconnectIntervalMax below a long ReconnectInterval: %v", r.ReconnectIntervalMax)
	}
}

// TestConfigValidate: Validate names the first bad field by its Go name,
// and NewSocket refuses what Validate refuses.
func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	good := []Config{
		{Linger: -1},
		{RoutingID: []byte("x")},
		{Properties: Metadata{{Name: "X-Hydra.v1", Value: []byte("1")}}},
		{ReconnectInterval: time.Second, ReconnectIntervalMax: time.Second},
	}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", c, err)
		}
	}
	bad := map[string]Config{
		"RoutingID":            {RoutingID: []byte{0, 'x'}},
		"Properties":           {Properties: Metadata{{Name: "bad name"}}},
		"SendHWM":              {SendHWM: -1},
		"RecvHWM":              {RecvHWM: -1},
		"SendTimeout":          {SendTimeout: -1},
		"RecvTimeout":          {RecvTimeout: -1},
		"MaxMsgSize":           {MaxMsgSize: -1},
		"HandshakeTimeout":     {HandshakeTimeout: -1},
		"ReconnectInterval":    {ReconnectInterval: -1},
		"ReconnectIntervalMax": {ReconnectInterval: time.Second, ReconnectIntervalMax: time.Millisecond},
		"HeartbeatInterval":    {HeartbeatInterval: -1},
		"HeartbeatTimeout":     {HeartbeatTimeout: -1},
		"HeartbeatTTL":         {HeartbeatTTL: -1},
	}
	for field, c := range bad {
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate with a bad %s: %v", field, err)
		}
		if _, err := NewSocket(PUSH, c); err == nil {
			t.Errorf("NewSocket with a bad %s accepted", field)
		}
	}
	long := Config{RoutingID: make([]byte, 256)}
	long.RoutingID[0] = 'x'
	if err := long.Validate(); err == nil || !strings.Contains(err.Error(), "RoutingID") {
		t.Errorf("256-byte RoutingID: %v", err)
	}
}
