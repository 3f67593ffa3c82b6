package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The fault suite: each case runs against a real daemon on loopback, with
// its figures (requests, 5xx, peak RSS, descriptors and goroutines before
// and after, CPU seconds, lost service-log lines) in a table. make test runs
// it at scale 1; make soak at QWEND_SOAK_SCALE=10, writing the table to
// QWEND_SOAK_REPORT.

type faultRow struct {
	name                     string
	requests, fiveXX         int64
	rssPeakMB                float64
	fdsBefore, fdsAfter      int
	goroutinesBefore, gAfter int
	cpuSeconds               float64
	lostLogLines             int
}

func soakScale() int {
	if n, err := strconv.Atoi(os.Getenv("QWEND_SOAK_SCALE")); err == nil && n > 0 {
		return n
	}
	return 1
}

func openFDs() int {
	es, _ := os.ReadDir("/proc/self/fd")
	return len(es)
}

func rssMB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// settle waits until the goroutine count is back at or under want (idle
// connections and timers end asynchronously), up to a deadline. The
// deadline is long because with the collector down the span processor's
// drain, after shutdown has returned, still tries each queued batch for
// its export timeout (5 s) in the background; at ten times the scale that
// is several batches. settle returns as soon as the count is back.
func settle(want int) int {
	deadline := time.Now().Add(90 * time.Second)
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond) // polling for goroutines to end
	}
}

// logLines counts the service log's inference lines.
func logLines(s string) int {
	return strings.Count(s, `"event":"inference"`)
}

// smallSendBuffers makes the server's socket send buffers small, so that a
// client that stops reading blocks the server's writes within a few events.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestFaultSuite(t *testing.T) {
	scale := soakScale()
	var rows []faultRow
	http.DefaultClient.CloseIdleConnections()
	var wrap func(net.Listener) net.Listener // the next case's listener
	run := func(name string, args []string, body func(t *testing.T, ts *testServer, count func(status int))) {
		t.Run(name, func(t *testing.T) {
			http.DefaultClient.CloseIdleConnections()
			runtime.GC()
			row := faultRow{name: name, goroutinesBefore: runtime.NumGoroutine(), fdsBefore: openFDs()}
			cpu0 := cpuSeconds()
			var peak atomic.Uint64
			stopSampling := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					if r := uint64(rssMB() * 1024); r > peak.Load() {
						peak.Store(r)
					}
					select {
					case <-stopSampling:
						return
					case <-tick.C:
					}
				}
			}()
			ts := startServerOn(t, wrap, nil, args...)
			wrap = nil
			var answered atomic.Int64
			count := func(status int) {
				row.requests++
				answered.Add(1)
				if status >= 500 {
					row.fiveXX++
				}
			}
			body(t, ts, count)
			ts.Stop()
			close(stopSampling)
			<-sampled
			http.DefaultClient.CloseIdleConnections()
			row.cpuSeconds = cpuSeconds() - cpu0
			row.rssPeakMB = float64(peak.Load()) / 1024
			row.gAfter = settle(row.goroutinesBefore)
			row.fdsAfter = openFDs()
			if lines := logLines(ts.Service.String()); int64(lines) < answered.Load() {
				row.lostLogLines = int(answered.Load()) - lines
			}
			if row.fiveXX != 0 || row.lostLogLines != 0 {
				t.Errorf("%s: %d 5xx, %d lost log lines", name, row.fiveXX, row.lostLogLines)
			}
			if row.gAfter > row.goroutinesBefore {
				buf := make([]byte, 1<<20)
				t.Errorf("%s: %d goroutines after, %d before:\n%s", name, row.gAfter, row.goroutinesBefore, buf[:runtime.Stack(buf, true)])
			}
			rows = append(rows, row)
		})
	}

	postStatus := func(url, body string) (int, error) {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	run("overload", []string{"--parallel", "2", "--queue-length", "4"}, func(t *testing.T, ts *testServer, count func(int)) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range 40 * scale {
			wg.Go(func() {
				st, err := postStatus(ts.URL+"/v1/completions", fmt.Sprintf(`{"prompt":"load %d","max_tokens":16,"stream":true}`, i))
				if err != nil {
					t.Error(err)
					return
				}
				if st != 200 && st != 429 {
					t.Errorf("status %d under overload", st)
				}
				mu.Lock()
				count(st)
				mu.Unlock()
			})
		}
		wg.Wait()
	})

	run("disconnect storm", []string{"--parallel", "4", "--queue-length", "64"}, func(t *testing.T, ts *testServer, count func(int)) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range 50 * scale {
			wg.Go(func() {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions", strings.NewReader(fmt.Sprintf(`{"prompt":"gone %d","max_tokens":400,"stream":true}`, i)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				bufio.NewReader(resp.Body).ReadString('\n')
				cancel()
				resp.Body.Close()
				mu.Lock()
				count(resp.StatusCode)
				mu.Unlock()
			})
		}
		wg.Wait()
		// every slot comes back
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := postStatus(ts.URL+"/v1/completions", `{"prompt":"after","max_tokens":2}`)
			if err == nil && st == 200 {
				count(st)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slots not freed after the storm: %d %v", st, err)
			}
			time.Sleep(10 * time.Millisecond) // polling the scheduler's next step
		}
	})

	run("slow bodies", []string{"--read-timeout", "500ms"}, func(t *testing.T, ts *testServer, count func(int)) {
		addr := strings.TrimPrefix(ts.URL, "http://")
		var conns []net.Conn
		for range 50 * scale {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"prompt\":")
			conns = append(conns, c)
		}
		// the server closes each one at its read timeout
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Errorf("slow body connection: %v", err)
			}
			c.Close()
		}
		st, err := postStatus(ts.URL+"/v1/completions", `{"prompt":"fine","max_tokens":2}`)
		if err != nil || st != 200 {
			t.Errorf("after slow bodies: %d %v", st, err)
		}
		count(st)
	})

	wrap = func(ln net.Listener) net.Listener { return smallSendBuffers{ln} }
	run("stalled readers", []string{"--parallel", "2", "--queue-length", "0", "--write-timeout", "300ms", "--ctx-size", "8192"}, func(t *testing.T, ts *testServer, count func(int)) {
		addr := strings.TrimPrefix(ts.URL, "http://")
		for range 2 * scale {
			var conns []net.Conn
			for range 2 {
				d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
					var serr error
					c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
					return serr
				}}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				body := `{"prompt":"never read","max_tokens":8000,"temperature":0,"stream":true}`
				fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				if line, err := bufio.NewReaderSize(c, 16).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
					t.Fatalf("stalled stream: %q %v", line, err)
				}
				conns = append(conns, c)
				count(200)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, err := postStatus(ts.URL+"/v1/completions", `{"prompt":"next","max_tokens":2}`)
				if err == nil && st == 200 {
					count(st)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("slots held by stalled readers: %d %v", st, err)
				}
				time.Sleep(20 * time.Millisecond) // polling until the write deadlines pass
			}
			for _, c := range conns {
				c.Close()
			}
			// the next round needs both slots: wait until nothing runs
			for deadline := time.Now().Add(20 * time.Second); ; {
				var m struct {
					Engine struct{ Running, Waiting int } `json:"engine"`
				}
				if resp, err := http.Get(ts.URL + "/metrics"); err == nil {
					json.NewDecoder(resp.Body).Decode(&m)
					resp.Body.Close()
					if m.Engine.Running == 0 && m.Engine.Waiting == 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("slots still held after the stalled readers were cut")
				}
				time.Sleep(20 * time.Millisecond) // polling the engine's load
			}
		}
	})

	for _, collector := range []string{"down", "black-holed"} {
		endpoint := "http://127.0.0.1:1"
		if collector == "black-holed" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				var held []net.Conn
				for {
					c, err := ln.Accept()
					if err != nil {
						for _, h := range held {
							h.Close()
						}
						return
					}
					held = append(held, c) // accepted, never answered
				}
			}()
			endpoint = "http://" + ln.Addr().String()
		}
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
		t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
		run("collector "+collector, []string{"--otel", "on", "--shutdown-timeout", "2s"}, func(t *testing.T, ts *testServer, count func(int)) {
			for i := range 20 * scale {
				st, err := postStatus(ts.URL+"/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":"q%d"}],"max_tokens":4}`, i))
				if err != nil || st != 200 {
					t.Errorf("with the collector %s: %d %v", collector, st, err)
				}
				count(st)
			}
		})
	}

	run("oversized prompts", []string{"--parallel", "1", "--queue-length", "0", "--max-body-bytes", "9000000"}, func(t *testing.T, ts *testServer, count func(int)) {
		prompt := strings.Repeat("lorem ipsum dolor\n", 400_000) // 7.2 MB
		body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": 1})
		for range scale {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for range 4 {
				wg.Go(func() {
					st, err := postStatus(ts.URL+"/v1/completions", string(body))
					// over the context (400), or refused before tokenizing
					// while the others hold the only place (429)
					if err != nil || st != 400 && st != 429 {
						t.Errorf("7 MB prompt: %d %v", st, err)
					}
					mu.Lock()
					count(st)
					mu.Unlock()
				})
			}
			wg.Wait()
		}
	})

	table := "| case | requests | 5xx | peak RSS MB | fds before/after | goroutines before/after | CPU s | lost log lines |\n|---|---|---|---|---|---|---|---|\n"
	for _, r := range rows {
		table += fmt.Sprintf("| %s | %d | %d | %.0f | %d/%d | %d/%d | %.2f | %d |\n", r.name, r.requests, r.fiveXX, r.rssPeakMB,
			r.fdsBefore, r.fdsAfter, r.goroutinesBefore, r.gAfter, r.cpuSeconds, r.lostLogLines)
	}
	t.Logf("fault suite at scale %d:\n%s", scale, table)
	if out := os.Getenv("QWEND_SOAK_REPORT"); out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		report := fmt.Sprintf("# Fault suite, scale %d (%s)\n\n`QWEND_SOAK_SCALE=%d go test -run TestFaultSuite ./cmd/qwend` on %s, %d CPUs.\n\n%s",
			scale, time.Now().UTC().Format(time.RFC3339), scale, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), table)
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
