package proxy

import (
	"github.com/caddyserver/certmagic"

	"github.com/ferryhq/ferry/internal/ferry"
)

// dnsProvider returns the libdns provider that --acme-dns names.
func dnsProvider(name string) (certmagic.DNSProvider, error) {
	return nil, ferry.Errorf(ferry.EINVALID, "--acme-dns %q: unknown DNS provider (known: route53)", name)
}
