package acmetest

import (
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Route53 is a stand-in for AWS Route 53's API (the four calls libdns/route53 makes: ListHostedZonesByName,
// ListResourceRecordSets, ChangeResourceRecordSets, GetChange) over one hosted zone, together with a real DNS
// server (miekg/dns) that is authoritative for that zone and answers with the records the API wrote, and every
// A query with 127.0.0.1. Point Pebble at DNS (Options.DNSServer) and the SDK at Endpoint
// (AWS_ENDPOINT_URL_ROUTE_53).
type Route53 struct {
	// Endpoint is the API's base URL.
	Endpoint string
	// DNS is the DNS server's address (UDP and TCP).
	DNS string
	// Zone is the hosted zone's name, with the final dot.
	Zone string

	mu      sync.Mutex
	txt     map[string][]string // FQDN → values
	changes []string            // "UPSERT _acme-challenge.ferry.test. TXT", as received
	signed  int                 // requests that carried a SigV4 Authorization for route53
}

// StartRoute53 runs the API and the DNS server for zone until the test ends.
func StartRoute53(t testing.TB, zone string) *Route53 {
	t.Helper()
	r := &Route53{Zone: fqdn(zone), txt: map[string][]string{}}
	api := httptest.NewServer(http.HandlerFunc(r.serveAPI))
	t.Cleanup(api.Close)
	r.Endpoint = api.URL

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	r.DNS = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: dns.HandlerFunc(r.serveDNS)}, {Listener: ln, Handler: dns.HandlerFunc(r.serveDNS)}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return r
}

// Changes returns the record changes the API received.
func (r *Route53) Changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.changes...)
}

// Signed is how many API requests carried a SigV4 signature for Route 53.
func (r *Route53) Signed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.signed
}

const r53NS = "https://route53.amazonaws.com/doc/2013-04-01/"

type r53RecordSet struct {
	Name            string `xml:"Name"`
	Type            string `xml:"Type"`
	TTL             int64  `xml:"TTL,omitempty"`
	ResourceRecords struct {
		Records []struct {
			Value string `xml:"Value"`
		} `xml:"ResourceRecord"`
	} `xml:"ResourceRecords"`
}

func (r *Route53) serveAPI(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if strings.Contains(req.Header.Get("Authorization"), "/route53/aws4_request") {
		r.signed++
	}
	r.mu.Unlock()
	p := strings.TrimPrefix(req.URL.Path, "/2013-04-01")
	w.Header().Set("Content-Type", "text/xml")
	change := `<ChangeInfo><Id>/change/C1</Id><Status>INSYNC</Status><SubmittedAt>` + time.Now().UTC().Format(time.RFC3339) + `</SubmittedAt></ChangeInfo>`
	switch {
	case req.Method == "GET" && p == "/hostedzonesbyname":
		fmt.Fprintf(w, `<ListHostedZonesByNameResponse xmlns="%s"><HostedZones><HostedZone><Id>/hostedzone/Z1</Id><Name>%s</Name><CallerReference>ferry-test</CallerReference><Config><PrivateZone>false</PrivateZone></Config><ResourceRecordSetCount>1</ResourceRecordSetCount></HostedZone></HostedZones><DNSName>%s</DNSName><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems></ListHostedZonesByNameResponse>`, r53NS, r.Zone, r.Zone)
	case req.Method == "GET" && strings.HasSuffix(p, "/rrset"):
		r.mu.Lock()
		var b strings.Builder
		for name, vals := range r.txt {
			fmt.Fprintf(&b, "<ResourceRecordSet><Name>%s</Name><Type>TXT</Type><TTL>60</TTL><ResourceRecords>", name)
			for _, v := range vals {
				fmt.Fprintf(&b, `<ResourceRecord><Value>"%s"</Value></ResourceRecord>`, v)
			}
			b.WriteString("</ResourceRecords></ResourceRecordSet>")
		}
		r.mu.Unlock()
		fmt.Fprintf(w, `<ListResourceRecordSetsResponse xmlns="%s"><ResourceRecordSets>%s</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>300</MaxItems></ListResourceRecordSetsResponse>`, r53NS, b.String())
	case req.Method == "POST" && strings.HasSuffix(strings.TrimSuffix(p, "/"), "/rrset"):
		var body struct {
			Changes []struct {
				Action string       `xml:"Action"`
				Set    r53RecordSet `xml:"ResourceRecordSet"`
			} `xml:"ChangeBatch>Changes>Change"`
		}
		raw, _ := io.ReadAll(req.Body)
		if err := xml.Unmarshal(raw, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, c := range body.Changes {
			name := strings.ToLower(fqdn(c.Set.Name))
			r.changes = append(r.changes, c.Action+" "+name+" "+c.Set.Type)
			if c.Set.Type != "TXT" {
				continue
			}
			var vals []string
			for _, rr := range c.Set.ResourceRecords.Records {
				vals = append(vals, strings.Trim(rr.Value, `"`))
			}
			switch c.Action {
			case "CREATE", "UPSERT":
				r.txt[name] = vals
			case "DELETE":
				delete(r.txt, name)
			}
		}
		r.mu.Unlock()
		fmt.Fprintf(w, `<ChangeResourceRecordSetsResponse xmlns="%s">%s</ChangeResourceRecordSetsResponse>`, r53NS, change)
	case req.Method == "GET" && strings.HasPrefix(p, "/change/"):
		fmt.Fprintf(w, `<GetChangeResponse xmlns="%s">%s</GetChangeResponse>`, r53NS, change)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>no route %s %s in the test stand-in</Message></Error></ErrorResponse>`, r53NS, req.Method, req.URL.Path)
	}
}

func (r *Route53) soa() dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: r.Zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns." + r.Zone, Mbox: "hostmaster." + r.Zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 1}
}

func (r *Route53) serveDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	for _, qu := range q.Question {
		name := strings.ToLower(qu.Name)
		inZone := name == r.Zone || strings.HasSuffix(name, "."+r.Zone)
		hdr := dns.RR_Header{Name: qu.Name, Rrtype: qu.Qtype, Class: dns.ClassINET, Ttl: 1}
		switch {
		case qu.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case qu.Qtype == dns.TypeSOA && name == r.Zone:
			m.Answer = append(m.Answer, r.soa())
		case qu.Qtype == dns.TypeNS && name == r.Zone:
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr, Ns: "ns." + r.Zone})
		case qu.Qtype == dns.TypeTXT:
			r.mu.Lock()
			for _, v := range r.txt[name] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
			r.mu.Unlock()
		}
		if len(m.Answer) == 0 && inZone {
			m.Ns = append(m.Ns, r.soa())
		}
	}
	_ = w.WriteMsg(m)
}
