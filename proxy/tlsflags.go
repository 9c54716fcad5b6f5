package proxy

import (
	"context"
	"crypto/x509"
	"flag"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// tlsFlags are `ferry proxy`'s HTTPS flags.
type tlsFlags struct {
	listen, certFile, keyFile, acmeCA, acmeEmail, acmeRoots, acmeChallenges string
	acmeDNS, acmeDNSResolvers                                               string
	acmeWildcard, noRedirect                                                bool
	certReload                                                              time.Duration
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	f := &tlsFlags{}
	fs.StringVar(&f.listen, "tls-listen", "", "`address` of the HTTPS listener, such as :443; empty: plain HTTP only. With it, --listen redirects site hosts to HTTPS (ACME HTTP-01 challenges excepted)")
	fs.StringVar(&f.certFile, "tls-cert-file", "", "PEM certificate chain `file` for HTTPS, reloaded when it changes (default: certificates from --acme-ca)")
	fs.StringVar(&f.keyFile, "tls-key-file", "", "PEM private key `file` of --tls-cert-file")
	fs.DurationVar(&f.certReload, "tls-cert-reload", 10*time.Second, "how often --tls-cert-file and --tls-key-file are checked for changes")
	fs.BoolVar(&f.noRedirect, "no-https-redirect", false, "serve sites on --listen too, instead of redirecting them to HTTPS")
	fs.StringVar(&f.acmeCA, "acme-ca", LetsEncrypt, "ACME directory `URL` certificates come from (using it accepts the CA's terms); staging: https://acme-staging-v02.api.letsencrypt.org/directory")
	fs.StringVar(&f.acmeEmail, "acme-email", "", "`email` the ACME CA may send expiry notices to (optional)")
	fs.StringVar(&f.acmeRoots, "acme-ca-roots", "", "PEM `file` of roots that the ACME CA's own HTTPS certificate is checked against (a private CA; default: the system's)")
	fs.StringVar(&f.acmeChallenges, "acme-challenges", "http-01,tls-alpn-01", "ACME challenge `types` to offer: http-01 (needs --listen on port 80), tls-alpn-01 (needs --tls-listen on port 443); dns-01 is added by --acme-dns")
	fs.StringVar(&f.acmeDNS, "acme-dns", "", "DNS `provider` for the DNS-01 challenges of the certificate for *.DOMAIN and DOMAIN (which covers every preview host): route53 (AWS credentials from the SDK's default chain; AWS_HOSTED_ZONE_ID optional)")
	fs.StringVar(&f.acmeDNSResolvers, "acme-dns-resolvers", "", "comma-separated DNS `servers` (host:port) that DNS-01 records are checked on (default: the system's)")
	fs.BoolVar(&f.acmeWildcard, "acme-wildcard", false, "get one certificate for *.DOMAIN and DOMAIN over DNS-01 (needs --acme-dns, which implies it), which covers every preview host")
	return f
}

// options turns the flags into TLSOptions; plainAddr is --listen.
func (f *tlsFlags) options(plainAddr string, log *slog.Logger) (TLSOptions, error) {
	opts := TLSOptions{CertFile: f.certFile, KeyFile: f.keyFile, CertReload: f.certReload, NoRedirect: f.noRedirect}
	if _, port, err := net.SplitHostPort(f.listen); err == nil {
		opts.HTTPSPort, _ = strconv.Atoi(port)
	} else {
		return opts, ferry.Errorf(ferry.EINVALID, "--tls-listen %q is not host:port (for example :443)", f.listen)
	}
	if f.certFile != "" || f.keyFile != "" {
		return opts, nil
	}
	a := ACMEOptions{CA: f.acmeCA, Email: f.acmeEmail, HTTPAddr: plainAddr, TLSAddr: f.listen, Wildcard: f.acmeWildcard, DisableHTTP01: true, DisableTLSALPN01: true}
	for _, c := range strings.Split(f.acmeChallenges, ",") {
		switch strings.TrimSpace(c) {
		case "http-01":
			a.DisableHTTP01 = false
		case "tls-alpn-01":
			a.DisableTLSALPN01 = false
		case "":
		default:
			return opts, ferry.Errorf(ferry.EINVALID, "--acme-challenges: unknown challenge %q (known: http-01, tls-alpn-01; dns-01 comes with --acme-dns)", c)
		}
	}
	if f.acmeRoots != "" {
		pem, err := os.ReadFile(f.acmeRoots)
		if err != nil {
			return opts, ferry.Errorf(ferry.EINVALID, "--acme-ca-roots: %w", err)
		}
		a.Roots = x509.NewCertPool()
		if !a.Roots.AppendCertsFromPEM(pem) {
			return opts, ferry.Errorf(ferry.EINVALID, "--acme-ca-roots %s holds no PEM certificate", f.acmeRoots)
		}
	}
	if f.acmeDNSResolvers != "" {
		a.DNSResolvers = strings.Split(f.acmeDNSResolvers, ",")
	}
	if f.acmeDNS != "" {
		p, err := dnsProvider(f.acmeDNS)
		if err != nil {
			return opts, err
		}
		a.DNS01 = p
	}
	if a.DisableHTTP01 && a.DisableTLSALPN01 && a.DNS01 == nil { // with DNS-01 only, custom domains get none
		return opts, ferry.Errorf(ferry.EINVALID, "no ACME challenge left: --acme-challenges is empty and no --acme-dns")
	}
	opts.ACME = a
	return opts, nil
}

// serveTLSCommand is the rest of `ferry proxy` when --tls-listen is set.
func (f *tlsFlags) serve(ctx context.Context, p *Proxy, plain net.Listener, grace time.Duration) error {
	opts, err := f.options(plain.Addr().String(), p.log)
	if err != nil {
		return err
	}
	secure, err := net.Listen("tcp", f.listen)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "listen on %s: %w; pick another --tls-listen address", f.listen, err)
	}
	if opts.ACME.CA != "" && opts.CertFile == "" {
		opts.ACME.TLSAddr = secure.Addr().String()
	}
	t, err := NewTLS(ctx, p, opts)
	if err != nil {
		secure.Close()
		return err
	}
	defer t.Close()
	mode := "acme"
	if opts.CertFile != "" {
		mode = "files"
	}
	p.log.Info("serving sites over HTTPS", "tls_listen", secure.Addr().String(), "certificates", mode, "acme_ca", opts.ACME.CA, "redirect", !opts.NoRedirect)
	return ServeTLS(ctx, plain, secure, p, t, grace)
}
