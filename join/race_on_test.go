//go:build race

package join_test

// raceOn: the race detector runs (it slows signatures several times over).
const raceOn = true
