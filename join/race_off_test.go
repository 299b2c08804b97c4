//go:build !race

package join_test

const raceOn = false
