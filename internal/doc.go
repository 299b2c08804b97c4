// Package internal holds what Hydra's packages share and users never see:
// one accept loop (acceptloop), caps on connections per source address
// and in total (admission), one redial backoff with jitter (backoff),
// HOST[:PORT] parsing with Hydra's default port (netaddr), a repeated
// failure logged once per cause with a count (repeatlog), what
// `hydra-server bench` measures and the registry load test (selfbench), and
// the shared test helpers (testutil).
package internal
