package egress

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var fuzzProxy struct {
	once     sync.Once
	addr     string
	connects *atomic.Int64
	err      error
}

// FuzzProxyRequest sends arbitrary bytes to a proxy whose policy refuses everything non-public, with a dialer
// that reaches nothing beyond loopback: whatever the request, the proxy answers with an HTTP status or closes,
// never panics, and never connects anywhere.
func FuzzProxyRequest(f *testing.F) {
	for _, s := range []string{
		"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
		"CONNECT 0x7f.1:80 HTTP/1.1\r\n\r\n",
		"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET http://[fe80::1%25eth0]/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT localhost:22 HTTP/1.0\r\n\r\n",
		"POST http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"\x16\x03\x01\x00\x05hello",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		fuzzProxy.once.Do(func() {
			// One proxy for the whole run (it lives as long as the test binary); a t.Cleanup of the first
			// iteration would stop it too early.
			fuzzProxy.addr, _, fuzzProxy.connects, fuzzProxy.err = startProxy(Config{HeaderTimeout: time.Second})
		})
		if fuzzProxy.err != nil {
			t.Fatal(fuzzProxy.err)
		}
		c, err := net.Dial("tcp", fuzzProxy.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(req)
		c.(*net.TCPConn).CloseWrite()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && err != io.EOF && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("reading the answer to %q: %v", req, err)
		}
		if line != "" && !strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.0 ") {
			t.Fatalf("answer to %q is not an HTTP status: %q", req, line)
		}
		if strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("%q was served: %q", req, line)
		}
		if n := fuzzProxy.connects.Load(); n != 0 {
			t.Fatalf("the proxy connected %d times", n)
		}
	})
}
