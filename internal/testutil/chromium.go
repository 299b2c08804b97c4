package testutil

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Browser is a headless Chromium (Debian's chromium) driven over the
// DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
// separated by NUL bytes on file descriptors 3 and 4), with the standard
// library only. It is closed when the test ends.
type Browser struct {
	t    testing.TB
	cmd  *exec.Cmd
	in   *os.File // our end of fd 3: commands
	mu   sync.Mutex
	next int
	wait map[int]chan cdpReply
	dead chan struct{} // closed when the reader ends (the browser is gone)
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// chromiumPaths are where Debian and other systems put the browser.
var chromiumPaths = []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"}

// Chromium starts a headless Chromium for t. It skips the test when none
// is installed, except under CI=true, where it fails (.ci/run installs it).
func Chromium(t testing.TB) *Browser {
	t.Helper()
	path := ""
	for _, p := range chromiumPaths {
		if lp, err := exec.LookPath(p); err == nil {
			path = lp
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: chromium must be installed")
		}
		t.Skip("chromium not installed")
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--no-default-browser-check", "--window-size=1280,900", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, evW} // fd 3: it reads; fd 4: it writes
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	evW.Close()
	b := &Browser{t: t, cmd: cmd, in: cmdW, wait: map[int]chan cdpReply{}, dead: make(chan struct{})}
	go b.read(evR)
	t.Cleanup(b.close)
	return b
}

func (b *Browser) read(r *os.File) {
	defer close(b.dead)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // screenshots are big
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		for i, c := range data {
			if c == 0 {
				return i + 1, data[:i], nil
			}
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		var m struct {
			ID int `json:"id"`
			cdpReply
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.wait[m.ID]
		delete(b.wait, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpReply
		}
	}
}

// call sends one command (to a page's session when session is set) and
// waits up to 30s for its result.
func (b *Browser) call(session, method string, params any, result any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpReply, 1)
	b.wait[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.in.Write(append(raw, 0)); err != nil {
		return fmt.Errorf("chromium: %s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("chromium: %s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-b.dead:
		return fmt.Errorf("chromium: %s: the browser is gone", method)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("chromium: %s: no answer in 30s", method)
	}
}

// Tab is one page of a Browser.
type Tab struct {
	b       *Browser
	session string
}

// Open opens url in a new tab and waits for it to load.
func (b *Browser) Open(url string) *Tab {
	b.t.Helper()
	var tg struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &tg); err != nil {
		b.t.Fatal(err)
	}
	var at struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": tg.TargetID, "flatten": true}, &at); err != nil {
		b.t.Fatal(err)
	}
	tab := &Tab{b: b, session: at.SessionID}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(tab.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil || nav.ErrorText != "" {
		b.t.Fatalf("open %s: %v %s", url, err, nav.ErrorText)
	}
	Eventually(b.t, 30*time.Second, url+" loaded", func() bool {
		var state string
		return tab.Eval("document.readyState", &state) == nil && state == "complete"
	})
	return tab
}

// Eval evaluates the JavaScript expression expr in the page and decodes
// its value (JSON-serializable) into out.
func (tab *Tab) Eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := tab.b.call(tab.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return errors.New("chromium: " + expr + ": " + r.Exception.Text)
	}
	if out == nil || r.Result.Value == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// Screenshot is a PNG of the page as it is now.
func (tab *Tab) Screenshot() ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := tab.b.call(tab.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// close asks the browser to quit, and kills it if it has not within 10s.
func (b *Browser) close() {
	done := make(chan struct{})
	go func() {
		_ = b.call("", "Browser.close", nil, nil)
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
	}
	exited := make(chan struct{})
	go func() {
		_ = b.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-ctx.Done():
		_ = b.cmd.Process.Kill()
		<-exited
	}
	b.in.Close()
}
