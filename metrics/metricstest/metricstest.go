// Package metricstest parses a Prometheus text exposition with Prometheus's
// own parser (github.com/prometheus/common/expfmt), for tests: imported by
// _test.go files only, so the parser never reaches the product's binary.
package metricstest

import (
	"fmt"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are parsed metric families by name.
type Families map[string]*dto.MetricFamily

// Parse parses text strictly (Prometheus's text parser, UTF-8 names) and
// also checks what that parser lets through: every family has HELP and
// TYPE, counters end in _total.
func Parse(text string) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	for name, f := range fams {
		if f.Help == nil && !strings.Contains(text, "# HELP "+name+" ") { // the parser drops an empty help
			return nil, fmt.Errorf("%s: no HELP line", name)
		}
		if f.Type == nil || f.GetType() == dto.MetricType_UNTYPED {
			return nil, fmt.Errorf("%s: no TYPE line", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			return nil, fmt.Errorf("%s: a counter's name must end in _total", name)
		}
	}
	return fams, nil
}

// Value is the value of family name's sample with exactly these labels
// (name, value pairs), and whether there is one.
func (fs Families) Value(name string, labels ...string) (float64, bool) {
	f := fs[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		for _, lp := range m.Label {
			want := ""
			for j := 0; j+1 < len(labels); j += 2 {
				if labels[j] == lp.GetName() {
					want = labels[j+1]
				}
			}
			if want != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}
