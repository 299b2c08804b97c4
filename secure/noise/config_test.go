package noise

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestConfigValidate: the zero Config lacks only Static; each bad field is
// reported by its name; withDefaults fills in the documented defaults.
func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "Static") {
		t.Fatalf("zero Config: %v, want Static reported", err)
	}
	good := Config{Static: newKeyPair(t)}
	if err := good.Validate(); err != nil {
		t.Fatalf("Config with only Static: %v", err)
	}
	for field, mutate := range map[string]func(*Config){
		"Cipher":                 func(c *Config) { c.Cipher = CipherChaChaPoly + 1 },
		"HandshakeTimeout":       func(c *Config) { c.HandshakeTimeout = -time.Second },
		"Payload":                func(c *Config) { c.Payload = make([]byte, MaxHandshakePayload+1) },
		"HandshakeRate":          func(c *Config) { c.HandshakeRate = math.NaN() },
		"HandshakeBurst":         func(c *Config) { c.HandshakeBurst = -1 },
		"MaxHandshakes":          func(c *Config) { c.MaxHandshakes = -1 },
		"MaxHandshakesPerSource": func(c *Config) { c.MaxHandshakesPerSource = -1 },
		"RecordTimeout":          func(c *Config) { c.RecordTimeout = -1 },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Config."+field+" ") {
			t.Errorf("bad %s: %v", field, err)
		}
	}
	d := good.withDefaults()
	if d.HandshakeTimeout != DefaultHandshakeTimeout || d.HandshakeRate != DefaultHandshakeRate ||
		d.HandshakeBurst != DefaultHandshakeBurst || d.MaxHandshakes != DefaultMaxHandshakes ||
		d.MaxHandshakesPerSource != DefaultMaxHandshakesPerSource || d.RecordTimeout != DefaultRecordTimeout || d.Logger == nil || d.rand == nil {
		t.Fatalf("defaults %+v", d)
	}
}
