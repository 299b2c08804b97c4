# Release and CI helpers; the build itself is plain `go build ./...`.
.PHONY: dist qemu-smoke footprint ci-extra bench clean

# Static, stripped binaries for every release platform, with SHA256SUMS.
dist:
	scripts/dist.sh

# The arm64 and armv7 binaries serve under qemu; zmtp and registry tests too.
qemu-smoke:
	scripts/qemu-smoke.sh

# Binary size and RSS against the release limits.
footprint:
	scripts/footprint.sh

# All of the above, as CI runs it.
ci-extra:
	scripts/ci-extra.sh

# hydra-server bench all, from source.
bench:
	go run ./cmd/hydra-server bench all

clean:
	rm -rf dist
