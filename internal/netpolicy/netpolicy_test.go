package netpolicy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// These cases never connect anywhere: the policy is checked on addresses only.
func TestClassify(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"127.0.0.1":            "loopback",
		"127.1.2.3":            "loopback",
		"::1":                  "loopback",
		"::ffff:127.0.0.1":     "loopback",
		"169.254.169.254":      "link-local",
		"fe80::1":              "link-local",
		"10.0.0.1":             "private",
		"172.16.5.4":           "private",
		"172.31.255.255":       "private",
		"192.168.1.1":          "private",
		"fd00::1":              "private",
		"fc00::1":              "private",
		"0.0.0.0":              "unspecified",
		"::":                   "unspecified",
		"0.1.2.3":              "reserved",
		"100.64.0.1":           "reserved",
		"255.255.255.255":      "reserved",
		"239.1.1.1":            "multicast",
		"ff05::1":              "multicast",
		"64:ff9b::a9fe:a9fe":   "link-local", // NAT64 of 169.254.169.254
		"2002:7f00:1::":        "loopback",   // 6to4 of 127.0.0.1
		"::169.254.169.254":    "link-local", // IPv4-compatible
		"8.8.8.8":              "",
		"1.1.1.1":              "",
		"172.32.0.1":           "",
		"2606:4700:4700::1111": "",
		"::ffff:140.82.112.3":  "",
		"64:ff9b::808:808":     "",
		"2001:4860:4860::8888": "",
	}
	for in, want := range cases {
		if got := Classify(netip.MustParseAddr(in)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckAllowsOperatorRanges(t *testing.T) {
	t.Parallel()
	allow, err := ParsePrefixes([]string{"10.1.0.0/16", "192.168.7.7", " "})
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Allow: allow}
	for _, ok := range []string{"10.1.2.3", "192.168.7.7", "8.8.8.8"} {
		if err := p.Check(netip.MustParseAddr(ok)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", ok, err)
		}
	}
	for _, bad := range []string{"10.2.0.1", "192.168.7.8", "127.0.0.1", "169.254.169.254"} {
		err := p.Check(netip.MustParseAddr(bad))
		if ferry.ErrorCode(err) != ferry.EFORBIDDEN {
			t.Errorf("Check(%s) = %v, want EFORBIDDEN", bad, err)
		}
	}
	if err := (Policy{AllowLoopback: true}).Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("AllowLoopback refused loopback: %v", err)
	}
	if err := (Policy{AllowLoopback: true}).Check(netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("AllowLoopback allowed a private address")
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("bad range: %v", err)
	}
	if _, err := ParsePrefixes([]string{"intranet"}); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("bad address: %v", err)
	}
}

// The dialer refuses in Control, before connect(2): dialing a refused address returns the policy's error
// even though nothing listens there, and no packet leaves (the address is never connected to).
func TestDialerRefusesBeforeConnecting(t *testing.T) {
	t.Parallel()
	d := Policy{}.Dialer(time.Second)
	for _, addr := range []string{"127.0.0.1:9", "[::1]:9", "169.254.169.254:80", "10.0.0.1:80"} {
		_, err := d.DialContext(context.Background(), "tcp", addr)
		if ferry.ErrorCode(err) != ferry.EFORBIDDEN {
			t.Errorf("dial %s: %v, want the policy's refusal", addr, err)
		}
	}
}

func TestDialerReachesAllowedLoopback(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := Policy{AllowLoopback: true}.Dialer(time.Second).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("allowed loopback refused: %v", err)
	}
	c.Close()
}

// Numeric spellings that resolvers and git accept for loopback are judged as the address they mean.
func TestCheckHostNumericSpellings(t *testing.T) {
	t.Parallel()
	p := Policy{}
	for _, h := range []string{"127.0.0.1", "[::1]", "::1", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001", "169.254.43518"} {
		err := p.CheckHost(context.Background(), nil, h)
		if ferry.ErrorCode(err) != ferry.EFORBIDDEN {
			t.Errorf("CheckHost(%q) = %v, want EFORBIDDEN", h, err)
		}
	}
	if a, ok := ParseLegacyIPv4("0x7f.1"); !ok || a != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("ParseLegacyIPv4(0x7f.1) = %v %v", a, ok)
	}
	for _, h := range []string{"example.com", "1.2.3.4.5", "0x", "09.1.1.1", "4294967296", ""} {
		if a, ok := ParseLegacyIPv4(h); ok {
			t.Errorf("ParseLegacyIPv4(%q) = %v, want not an address", h, a)
		}
	}
}
