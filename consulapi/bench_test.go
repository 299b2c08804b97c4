package consulapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hydra-net/hydra/internal/testutil"
	"github.com/hydra-net/hydra/node"
	"github.com/hydra-net/hydra/registry"
)

// benchServerEnv makes the test binary a server for the benchmarks: a
// process of its own, so that its RSS is the server's and its file
// descriptors are not the clients'.
const benchServerEnv = "HYDRA_CONSULAPI_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		benchServer()
		return
	}
	os.Exit(m.Run())
}

func benchServer() {
	n, err := node.New(node.Config{Endpoint: "tcp://127.0.0.1:0", HTTP: node.HTTPConfig{Addr: "127.0.0.1:0"},
		Registry: registry.Config{MaxWatches: 100}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	n.HandleHTTP("GET /debug/mem", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(w, "heapInuse %d MiB heapAlloc %d MiB stackInuse %d MiB sys %d MiB goroutines %d\n",
			m.HeapInuse>>20, m.HeapAlloc>>20, m.StackInuse>>20, m.Sys>>20, runtime.NumGoroutine())
	}))
	var prof *os.File
	n.HandleHTTP("GET /debug/prof/{op}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := os.Getenv("HYDRA_BENCH_CPUPROFILE")
		switch {
		case path == "":
		case r.PathValue("op") == "start":
			prof, _ = os.Create(path)
			pprof.StartCPUProfile(prof)
		case prof != nil:
			pprof.StopCPUProfile()
			prof.Close()
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }() // stdin closed: the bench is done
	fmt.Println(n.HTTPAddr(), n.Endpoint())
	n.Run(ctx)
}

type benchProc struct {
	cmd            *exec.Cmd
	stdin          io.Closer
	http, endpoint string
}

func startBenchServer(b *testing.B) *benchProc {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 {
		b.Fatalf("bench server said %q, %v", line, err)
	}
	p := &benchProc{cmd: cmd, stdin: in, http: f[0], endpoint: f[1]}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	return p
}

// rssKiB is a process's VmRSS and VmHWM (peak), from /proc.
func rssKiB(pid int) (rss, peak int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			peak, _ = strconv.Atoi(f[1])
		}
	}
	return
}

func benchClient(b *testing.B, endpoint string) *registry.Client {
	cl, err := registry.NewClient(registry.ClientConfig{Endpoint: endpoint})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	return cl
}

func waitHTTP(b *testing.B, c *http.Client, url string, ok func(body []byte) bool) {
	b.Helper()
	testutil.Eventually(b, 60*time.Second, "GET "+url, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && ok(body)
	})
}

// BenchmarkHealthService64: GET /v1/health/service/web (3 instances)
// from 64 connections at once; the server is another process on the same
// 2 cores.
func BenchmarkHealthService64(b *testing.B) {
	p := startBenchServer(b)
	cl := benchClient(b, p.endpoint)
	ctx := context.Background()
	for i := range 3 {
		if _, err := cl.Register(ctx, registry.Service{Name: "web", Host: "10.0.0." + strconv.Itoa(i+1), Port: 8080,
			Meta: map[string]string{"tags": "v1,primary", "zone": "z1"}}); err != nil {
			b.Fatal(err)
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	c := &http.Client{Transport: tr}
	url := "http://" + p.http + "/v1/health/service/web"
	waitHTTP(b, c, url, func(body []byte) bool { return strings.Count(string(body), `"ServiceID"`) == 3 })
	b.SetParallelism((64 + 1) / 2) // 64 goroutines on 2 Ps
	if r, err := c.Get("http://" + p.http + "/debug/prof/start"); err == nil {
		r.Body.Close()
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
	if r, err := c.Get("http://" + p.http + "/debug/prof/stop"); err == nil {
		r.Body.Close()
	}
	rss, _ := rssKiB(p.cmd.Process.Pid)
	b.ReportMetric(float64(rss)/1024, "server-RSS-MiB")
}

// BenchmarkBlockingWakeup10k: 10 000 blocking health queries on one name,
// each on its own connection, parked on the server; one registration of
// that name wakes them all. Reports the spread from the registration's
// reply to each answer (p50, p99, max) and the server's RSS.
func BenchmarkBlockingWakeup10k(b *testing.B) {
	const n = 10000
	p := startBenchServer(b)
	cl := benchClient(b, p.endpoint)
	ctx := context.Background()
	if _, err := cl.Register(ctx, registry.Service{Name: "web", Host: "10.0.0.1", Port: 80}); err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: n, DialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext}
	c := &http.Client{Transport: tr}
	base := "http://" + p.http
	for it := 0; it < b.N; it++ {
		var idx string
		waitHTTP(b, c, base+"/v1/health/service/web", func(body []byte) bool { return strings.Count(string(body), `"ServiceID"`) == 1+it })
		resp, _ := c.Get(base + "/v1/health/service/web")
		idx = resp.Header.Get("X-Consul-Index")
		resp.Body.Close()

		var (
			wg      sync.WaitGroup
			closed  sync.WaitGroup
			mu      sync.Mutex
			lat     []time.Duration
			changed time.Time
			errs    int
		)
		// Raw connections: the client's own HTTP stack would cost more
		// than the server's on these 2 shared cores; what is measured is
		// when each answer's first bytes arrive.
		answered := make(chan struct{})
		req := []byte("GET /v1/health/service/web?wait=5m&index=" + idx + " HTTP/1.1\r\nHost: bench\r\n\r\n")
		for range n {
			wg.Add(1)
			closed.Add(1)
			go func() {
				fail := func() { mu.Lock(); errs++; mu.Unlock() }
				var conn net.Conn
				// Closes are not part of the wake-up: after every answer.
				defer func() {
					wg.Done()
					<-answered
					if conn != nil {
						conn.Close()
					}
					closed.Done()
				}()
				c, err := net.DialTimeout("tcp", p.http, 30*time.Second)
				if err != nil {
					fail()
					return
				}
				conn = c
				if _, err := conn.Write(req); err != nil {
					fail()
					return
				}
				buf := make([]byte, 16)
				k, err := io.ReadAtLeast(conn, buf, 12)
				done := time.Now()
				if err != nil || string(buf[:12]) != "HTTP/1.1 200" {
					fail()
					return
				}
				_ = k
				mu.Lock()
				lat = append(lat, done.Sub(changed))
				mu.Unlock()
			}()
		}
		waitHTTP(b, c, base+"/v1/agent/self", func(body []byte) bool {
			var self struct {
				Stats struct {
					Hydra struct{ Blocking_queries int }
				}
			}
			json.Unmarshal(body, &self)
			return self.Stats.Hydra.Blocking_queries == n
		})
		rssParked, _ := rssKiB(p.cmd.Process.Pid)
		if os.Getenv("HYDRA_BENCH_MEM") != "" {
			resp, err := c.Get(base + "/debug/mem")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				b.Logf("parked: RSS %d MiB, %s", rssParked>>10, body)
			}
		}
		if r, err := c.Get(base + "/debug/prof/start"); err == nil {
			r.Body.Close()
		}
		mu.Lock()
		changed = time.Now()
		mu.Unlock()
		if _, err := cl.Register(ctx, registry.Service{Name: "web", Host: "10.0.1." + strconv.Itoa(it%250+1), Port: 81 + it}); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		close(answered)
		closed.Wait()
		if r, err := c.Get(base + "/debug/prof/stop"); err == nil {
			r.Body.Close()
		}
		if errs > 0 || len(lat) != n {
			b.Fatalf("%d errors, %d answers of %d", errs, len(lat), n)
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		b.ReportMetric(ms(lat[n/2]), "p50-ms")
		b.ReportMetric(ms(lat[n*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[n-1]), "max-ms")
		_, peak := rssKiB(p.cmd.Process.Pid)
		b.ReportMetric(float64(rssParked)/1024, "server-RSS-parked-MiB")
		b.ReportMetric(float64(peak)/1024, "server-peak-RSS-MiB")
	}
}
