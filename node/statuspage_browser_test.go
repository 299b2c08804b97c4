package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/nodetest"
	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
)

// TestStatusPageInChromium loads the status page in headless Chromium: it
// shows what is registered, a service registered over ZMTP after the page
// loaded appears on it (server-sent events), and names and metadata that
// are HTML are shown as text, never run. The screenshot is kept as an
// artifact (go test -artifacts -outputdir DIR keeps it; its path is
// logged).
func TestStatusPageInChromium(t *testing.T) {
	br := testutil.Chromium(t)
	n := nodetest.Start(t, node.Config{HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"}, Version: "test"})
	c := n.Client(t)
	ctx := testutil.Context(t, 60*time.Second)
	if _, err := c.Register(ctx, registry.Service{Name: "before", Host: "10.0.0.1", Port: 80,
		Meta: map[string]string{"evil": `<img src=x onerror="document.body.dataset.pwned='meta'">`}}); err != nil {
		t.Fatal(err)
	}
	tab := br.Open("http://" + n.HTTPAddr() + "/")
	text := func() string {
		var s string
		if err := tab.Eval(`document.getElementById("services").textContent`, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	testutil.Eventually(t, 30*time.Second, "the page shows the service registered before it loaded", func() bool {
		return contains(text(), "before")
	})
	const xssName = `<script>document.body.dataset.pwned='name'</script>`
	if _, err := c.Register(ctx, registry.Service{Name: "after-load", Host: "10.0.0.2", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, registry.Service{Name: xssName, Host: "10.0.0.3", Port: 1}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the page shows the services registered after it loaded", func() bool {
		s := text()
		return contains(s, "after-load") && contains(s, "tcp://10.0.0.2:8080") && contains(s, xssName)
	})
	var live string
	if err := tab.Eval(`document.getElementById("live").textContent`, &live); err != nil || live != "live" {
		t.Errorf("live indicator %q (%v), want live (server-sent events)", live, err)
	}
	var pwned, imgs, scripts int
	if err := tab.Eval(`document.body.dataset.pwned ? 1 : 0`, &pwned); err != nil {
		t.Fatal(err)
	}
	if err := tab.Eval(`document.querySelectorAll("#services img").length`, &imgs); err != nil {
		t.Fatal(err)
	}
	if err := tab.Eval(`document.querySelectorAll("script").length`, &scripts); err != nil {
		t.Fatal(err)
	}
	if pwned != 0 || imgs != 0 || scripts != 1 {
		t.Errorf("markup from a name or metadata was interpreted: pwned %d, img elements %d, scripts %d (want 0, 0, 1)", pwned, imgs, scripts)
	}
	png, err := tab.Screenshot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "statuspage.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
