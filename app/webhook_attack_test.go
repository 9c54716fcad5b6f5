package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ghwebhooks"
	"github.com/ferryhq/ferry/internal/pgtest"
)

// TestWebhookMemoryUnderAttack is issue 11's item 2 attack on the whole App over real TCP: 40 unauthenticated
// connections at once, some declaring 25 MiB bodies and sending them slowly, some streaming 25 MiB chunked
// bodies as fast as they can, some sending just under the body cap, some dribbling. The process's resident
// memory must stay within 64 MiB of what it was before, and signed deliveries sent meanwhile must be taken.
// It is not parallel: it measures the whole process.
func TestWebhookMemoryUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 5 s attack on a running App")
	}
	dbURL := pgtest.NewURL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "attack-secret"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Listener: ln, DatabaseURL: dbURL, Storage: "file://" + t.TempDir(), WebhookSecret: secret,
			ShutdownTimeout: 5 * time.Second}, logger)
	}()
	defer func() {
		cancel()
		<-done
	}()
	addr := ln.Addr().String()
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz never answered 200: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ping := ghwebhooks.Payload(t, "ping")
	var legit atomic.Int64
	deliver := func() error {
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/github", bytes.NewReader(ping))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "ping")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("legit-%d", legit.Add(1)))
		req.Header.Set("X-Hub-Signature-256", sign(ping, secret))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
		return nil
	}
	for range 3 { // warm: connection pools, templates, the first River insert
		if err := deliver(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	baseRSS := vmRSS(t)

	var peak atomic.Int64
	peak.Store(baseRSS)
	attackCtx, stopAttack := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopAttack()
	var wg sync.WaitGroup
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for attackCtx.Err() == nil {
			if r := vmRSS(t); r > peak.Load() {
				peak.Store(r)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var statuses sync.Map // status line -> count, for the failure message
	fake := "sha256=" + strings.Repeat("ab", 32)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attackCtx.Err() == nil {
				st := attack(attackCtx, addr, fake, i%4)
				n, _ := statuses.LoadOrStore(st, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	// Signed deliveries keep arriving during the attack, and every one is taken.
	var failures []string
	for attackCtx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		if err := deliver(); err != nil {
			failures = append(failures, err.Error())
		}
	}
	wg.Wait()
	<-sampled
	var seen []string
	statuses.Range(func(k, v any) bool {
		seen = append(seen, fmt.Sprintf("%s ×%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("RSS %d MiB before, %d MiB at peak; attack answers: %s; %d signed deliveries", baseRSS>>20, peak.Load()>>20,
		strings.Join(seen, ", "), legit.Load()-3)
	if grew := peak.Load() - baseRSS; grew > 64<<20 {
		t.Errorf("resident memory grew by %d MiB under the attack, want at most 64 MiB", grew>>20)
	}
	if len(failures) > 0 {
		t.Errorf("%d signed deliveries failed during the attack: %s", len(failures), strings.Join(failures, "; "))
	}
}

// attack sends one unauthenticated delivery of the given kind and returns the server's status line (or how the
// connection ended): 0 declares 25 MiB and sends slowly, 1 streams 25 MiB chunked at full speed, 2 sends a
// body just under the 8 MiB cap at full speed, 3 declares 1 MiB and dribbles.
func attack(ctx context.Context, addr, signature string, kind int) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial error"
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	length := map[int]int{0: 25 << 20, 2: 8<<20 - 1, 3: 1 << 20}[kind]
	head := "POST /webhooks/github HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n" +
		"X-GitHub-Event: push\r\nX-GitHub-Delivery: attack\r\nX-Hub-Signature-256: " + signature + "\r\n"
	if kind == 1 {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += "Content-Length: " + strconv.Itoa(length) + "\r\n\r\n"
	}
	status := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			status <- "closed without answer"
			return
		}
		status <- strings.TrimSpace(line)
	}()
	if _, err := io.WriteString(c, head); err != nil {
		return "write error"
	}
	chunk := attackChunk
	chunked := attackChunked
	sent := 0
	for sent < 25<<20 && ctx.Err() == nil {
		var err error
		switch kind {
		case 0:
			time.Sleep(20 * time.Millisecond)
			_, err = c.Write(chunk)
		case 1:
			_, err = c.Write(chunked)
		case 2:
			_, err = c.Write(chunk[:min(len(chunk), length-sent)])
		case 3:
			time.Sleep(100 * time.Millisecond)
			_, err = c.Write(chunk[:1024])
		}
		if err != nil {
			break
		}
		sent += len(chunk)
		if kind != 1 && sent >= length {
			break
		}
		select {
		case st := <-status:
			return st
		default:
		}
	}
	if kind == 1 && ctx.Err() == nil {
		io.WriteString(c, "0\r\n\r\n")
	}
	select {
	case st := <-status:
		return st
	case <-ctx.Done():
		return "cut at the end of the attack"
	}
}

// The attackers' bodies, shared, so that the attacking side of this process allocates nothing per write.
var (
	attackChunk   = bytes.Repeat([]byte("x"), 32<<10)
	attackChunked = append(append([]byte(fmt.Sprintf("%x\r\n", len(attackChunk))), attackChunk...), "\r\n"...)
)

// vmRSS is this process's resident memory in bytes.
func vmRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
