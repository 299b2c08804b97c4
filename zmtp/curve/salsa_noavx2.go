//go:build !amd64 || purego || !gc

package curve

const useAVX2 = false

func xorKeyStreamWide(out, in []byte, counter *[16]byte, key *[32]byte) int { return 0 }
