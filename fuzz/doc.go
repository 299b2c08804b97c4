// Package fuzz indexes Hydra's fuzz targets. The targets live next to the
// code they exercise (zmtp, zmtp/curve, secure/noise, registry, ...) so
// that they can reach unexported decoders; this package's test checks that
// every one of them
// has a seed corpus checked in under its package's testdata/fuzz/<Target>,
// and README.md says how to run them.
package fuzz
