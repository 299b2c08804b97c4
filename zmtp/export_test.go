package zmtp

// What the external tests (package zmtp_test) may reach beyond the public
// API.

// WithZMTP30 returns cfg for a socket that announces ZMTP 3.0 instead of
// 3.1, as an older peer would.
func WithZMTP30(cfg Config) Config {
	cfg.zmtp30 = true
	return cfg
}

// SpeaksZMTP30 reports whether cfg came from WithZMTP30.
func SpeaksZMTP30(cfg Config) bool { return cfg.zmtp30 }

// pendingBytes is what s counts as pending for all its peers.
func (s *Socket) pendingBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}
