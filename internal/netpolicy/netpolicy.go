// Package netpolicy decides which IP addresses Ferry may connect to on behalf of untrusted input: a build's
// package downloads (through the egress proxy), a project's git URL, a `_redirects` rule that proxies to an
// origin. Everything that is not a public unicast address is refused unless the operator allows its range,
// because those addresses are where the host's own services, the cloud metadata endpoint and the private network
// live. The check runs on the resolved address right before connecting (net.Dialer.Control), so DNS answers,
// redirects and numeric spellings such as 2130706433 or 0x7f.1 cannot get around it.
package netpolicy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Policy is the set of non-public ranges the operator allows on top of the public internet. The zero value
// refuses every non-public address.
type Policy struct {
	// Allow lists ranges that are reachable although they are not public, for example an internal registry's
	// 10.1.2.0/24. Default: none.
	Allow []netip.Prefix
	// AllowLoopback allows 127.0.0.0/8 and ::1, which only `ferry dev` and tests want. Default: false.
	AllowLoopback bool
}

// refused are the ranges that are not public unicast internet, beyond what netip.Addr's predicates cover.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, often a cloud's internal network
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and 255.255.255.255
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// ParsePrefixes reads an operator's list of ranges ("10.1.0.0/16", or a single address such as "10.1.2.3").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, ferry.Errorf(ferry.EINVALID, "allowed range %q is neither a CIDR range (10.0.0.0/8) nor an address", s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "allowed range %q is not a CIDR range such as 10.0.0.0/8", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Check returns nil when addr may be reached, and an EFORBIDDEN error naming the kind of range otherwise.
func (p Policy) Check(addr netip.Addr) error {
	kind := Classify(addr)
	if kind == "" {
		return nil
	}
	a := addr.Unmap()
	if kind == "loopback" && p.AllowLoopback {
		return nil
	}
	for _, pre := range p.Allow {
		if pre.Contains(a) {
			return nil
		}
	}
	return ferry.Errorf(ferry.EFORBIDDEN, "connection to %s refused: it is a %s address (an operator can allow a range by flag)", a, kind)
}

// Classify names the kind of non-public range addr is in ("loopback", "private", "link-local", ...), or
// returns "" for a public unicast address. IPv4 addresses embedded in IPv6 (mapped, NAT64, 6to4) are judged as
// the IPv4 address they carry.
func Classify(addr netip.Addr) string {
	if !addr.IsValid() {
		return "invalid"
	}
	addr = addr.Unmap()
	if addr.Is6() {
		b := addr.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(addr): // NAT64
			return Classify(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case netip.MustParsePrefix("2002::/16").Contains(addr): // 6to4
			return Classify(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		case netip.MustParsePrefix("::/96").Contains(addr) && !addr.IsLoopback() && !addr.IsUnspecified(): // IPv4-compatible
			return Classify(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
	}
	switch {
	case addr.IsLoopback():
		return "loopback"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast():
		return "link-local"
	case addr.IsPrivate():
		return "private"
	case addr.IsMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, pre := range refused {
		if pre.Contains(addr) {
			return "reserved"
		}
	}
	return ""
}

// Control is a net.Dialer.Control function: it refuses a connection to a non-allowed address after DNS
// resolution and before the connect system call, so nothing is sent to a refused address.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return ferry.Errorf(ferry.EFORBIDDEN, "connection to %q refused: not an IP address and port", address)
	}
	return p.Check(ap.Addr())
}

// Dialer returns a net.Dialer that enforces the policy on every address it tries.
func (p Policy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.Control}
}

// CheckHost resolves host and refuses it when any of its addresses is refused, so that a caller that hands the
// name to another program (git) does not rely on that program resolving it the same way. A literal IP address
// in any spelling the resolver accepts is checked as that address.
func (p Policy) CheckHost(ctx context.Context, r *net.Resolver, host string) error {
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(host, "."), "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Check(a)
	}
	if a, ok := ParseLegacyIPv4(host); ok {
		return p.Check(a)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "cannot resolve host %q: %w", host, err)
	}
	if len(addrs) == 0 {
		return ferry.Errorf(ferry.EINVALID, "host %q has no address", host)
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return fmt.Errorf("host %q: %w", host, err)
		}
	}
	return nil
}

// ParseLegacyIPv4 reads the inet_aton spellings of an IPv4 address that C resolvers, curl and git accept but
// netip does not: 1 to 4 parts, each decimal, 0x-hex or 0-octal, the last filling the remaining bytes
// (2130706433, 0x7f.1, 0177.0.0.1, 127.1).
func ParseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, part := range parts {
		base, digits := 10, part
		switch {
		case strings.HasPrefix(part, "0x") || strings.HasPrefix(part, "0X"):
			base, digits = 16, part[2:]
		case len(part) > 1 && part[0] == '0':
			base, digits = 8, part[1:]
		}
		if digits == "" {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	last := vals[len(vals)-1]
	for _, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
	}
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	var n uint64
	for _, v := range vals[:len(vals)-1] {
		n = n<<8 | v
	}
	n = n<<(8*(5-len(vals))) | last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// HostPrefixes resolves host and returns each of its addresses as a one-address range, for allowing one
// named internal host (a registry mirror) without its whole network.
func HostPrefixes(ctx context.Context, r *net.Resolver, host string) ([]netip.Prefix, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINVALID, "cannot resolve host %q: %w", host, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
