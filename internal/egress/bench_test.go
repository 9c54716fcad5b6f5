package egress

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/netpolicy"
)

// BenchmarkTunnel moves 8 MiB per op from a loopback server to the client, directly and through the egress
// path of a sandboxed build (TCP forwarder, unix socket, proxy tunnel), side by side:
//
//	go test -run XXX -bench Tunnel -benchtime 20x ./internal/egress
func BenchmarkTunnel(b *testing.B) {
	const size = 8 << 20
	src, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	chunk := make([]byte, 64<<10)
	go func() {
		for {
			c, err := src.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	p := New(Config{Policy: netpolicy.Policy{AllowLoopback: true}})
	sock := filepath.Join(b.TempDir(), "egress.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(uln)
	defer p.Close()
	fwd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Close()
	go Forward(fwd, sock)

	fetch := func(b *testing.B, viaProxy bool) {
		addr := src.Addr().String()
		var c net.Conn
		var r io.Reader
		if viaProxy {
			c, err = net.Dial("tcp", fwd.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			io.WriteString(c, "CONNECT "+addr+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
			br := bufio.NewReader(c)
			line, _ := br.ReadString('\n')
			if !strings.HasPrefix(line, "HTTP/1.1 200") {
				b.Fatalf("CONNECT: %q", line)
			}
			br.ReadString('\n')
			r = br
		} else {
			if c, err = net.Dial("tcp", addr); err != nil {
				b.Fatal(err)
			}
			r = c
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != size {
			b.Fatalf("read %d bytes, %v", n, err)
		}
	}
	for _, mode := range []struct {
		name  string
		proxy bool
	}{{"direct", false}, {"egress", true}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				fetch(b, mode.proxy)
			}
		})
	}
}
