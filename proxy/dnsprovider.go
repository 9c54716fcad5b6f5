package proxy

import (
	"os"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/route53"

	"github.com/ferryhq/ferry/internal/ferry"
)

// dnsProvider returns the libdns provider that --acme-dns names. Route 53 takes its credentials, and its
// endpoint (AWS_ENDPOINT_URL_ROUTE_53), from the AWS SDK's default chain; AWS_HOSTED_ZONE_ID skips the zone
// lookup.
func dnsProvider(name string) (certmagic.DNSProvider, error) {
	switch name {
	case "route53":
		p := &route53.Provider{HostedZoneID: os.Getenv("AWS_HOSTED_ZONE_ID"), WaitForRoute53Sync: true}
		if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
			p.Region = "us-east-1" // Route 53 is global; the SDK still wants a region
		}
		return p, nil
	}
	return nil, ferry.Errorf(ferry.EINVALID, "--acme-dns %q: unknown DNS provider (known: route53)", name)
}
