package ghfake

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HookDelivery is one attempt the fake made to deliver a webhook to the App's webhook URL, in the wire form of
// GET /app/hook/deliveries.
type HookDelivery struct {
	ID             int64     `json:"id"`
	GUID           string    `json:"guid"`
	DeliveredAt    time.Time `json:"delivered_at"`
	Redelivery     bool      `json:"redelivery"`
	Duration       float64   `json:"duration"`
	Status         string    `json:"status"`
	StatusCode     int       `json:"status_code"`
	Event          string    `json:"event"`
	Action         *string   `json:"action"`
	InstallationID *int64    `json:"installation_id"`
	RepositoryID   *int64    `json:"repository_id"`

	body []byte
}

// hooks is the fake's App webhook: where it delivers, with what secret, and every attempt.
type hooks struct {
	mu         sync.Mutex
	url        string
	secret     []byte
	deliveries []*HookDelivery // oldest first
	inflight   sync.WaitGroup
	client     *http.Client
}

// SetWebhook sets the App's webhook URL and secret, as the App's settings page does. Deliveries go there from
// then on; a URL nothing listens on makes them fail (status_code 0), as GitHub records them.
func (s *Server) SetWebhook(webhookURL string, secret []byte) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.url, s.hooks.secret = webhookURL, secret
}

// Deliver sends event with body to the webhook URL now, signed, as a new delivery with a fresh GUID, and
// records the attempt. It returns the GUID.
func (s *Server) Deliver(event string, body []byte) string {
	guid := newGUID()
	s.attempt(guid, event, body, false)
	return guid
}

// HookDeliveries returns every delivery attempt, oldest first.
func (s *Server) HookDeliveries() []HookDelivery {
	s.hooks.inflight.Wait()
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	out := make([]HookDelivery, len(s.hooks.deliveries))
	for i, d := range s.hooks.deliveries {
		out[i] = *d
	}
	return out
}

// WaitDeliveries waits for the redeliveries the fake was asked for to be attempted.
func (s *Server) WaitDeliveries() { s.hooks.inflight.Wait() }

// SetDeliveredAt backdates a delivery attempt, to test the age limits of listing and redelivery.
func (s *Server) SetDeliveredAt(id int64, t time.Time) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	for _, d := range s.hooks.deliveries {
		if d.ID == id {
			d.DeliveredAt = t
		}
	}
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// attempt POSTs one delivery the way GitHub's hookshot does and records how it went.
func (s *Server) attempt(guid, event string, body []byte, redelivery bool) {
	s.hooks.mu.Lock()
	target, secret := s.hooks.url, s.hooks.secret
	if s.hooks.client == nil {
		s.hooks.client = &http.Client{Timeout: 10 * time.Second} // GitHub gives up after 10 s
	}
	client := s.hooks.client
	s.hooks.mu.Unlock()
	s.mu.Lock()
	id := s.id()
	appID := s.AppID
	now := s.now().UTC().Truncate(time.Second)
	s.mu.Unlock()

	d := &HookDelivery{ID: id, GUID: guid, DeliveredAt: now, Redelivery: redelivery, Event: event, body: body}
	var meta struct {
		Action       *string `json:"action"`
		Installation *struct {
			ID int64 `json:"id"`
		} `json:"installation"`
		Repository *struct {
			ID int64 `json:"id"`
		} `json:"repository"`
	}
	_ = json.Unmarshal(body, &meta)
	d.Action = meta.Action
	if meta.Installation != nil {
		d.InstallationID = &meta.Installation.ID
	}
	if meta.Repository != nil {
		d.RepositoryID = &meta.Repository.ID
	}

	start := time.Now()
	d.Status = "failed to connect to host"
	if u, err := url.Parse(target); err == nil && target != "" && (u.Scheme == "http" || u.Scheme == "https") {
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if err == nil {
			mac := hmac.New(sha256.New, secret)
			mac.Write(body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "GitHub-Hookshot/ghfake")
			req.Header.Set("X-GitHub-Event", event)
			req.Header.Set("X-GitHub-Delivery", guid)
			req.Header.Set("X-GitHub-Hook-ID", "1")
			req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
			req.Header.Set("X-GitHub-Hook-Installation-Target-ID", strconv.FormatInt(appID, 10))
			req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				d.StatusCode = resp.StatusCode
				d.Status = "OK"
				if resp.StatusCode >= 300 {
					d.Status = fmt.Sprintf("Invalid HTTP Response: %d", resp.StatusCode)
				}
			} else if strings.Contains(err.Error(), "Timeout") {
				d.Status = "timed out"
			}
		}
	}
	d.Duration = time.Since(start).Seconds()
	s.hooks.mu.Lock()
	s.hooks.deliveries = append(s.hooks.deliveries, d)
	s.hooks.mu.Unlock()
}

// hookDeliveryList is GET /app/hook/deliveries: newest first, per_page (default 30, at most 100), paged by an
// opaque cursor in the Link header, as GitHub does.
func (s *Server) hookDeliveryList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	var before int64 = -1
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(c, "v1_"), 10, 64)
		if err != nil || !strings.HasPrefix(c, "v1_") {
			invalid(w, "Invalid cursor")
			return
		}
		before = n
	}
	s.hooks.mu.Lock()
	var page []*HookDelivery
	more := false
	for i := len(s.hooks.deliveries) - 1; i >= 0; i-- {
		d := s.hooks.deliveries[i]
		if before >= 0 && d.ID >= before {
			continue
		}
		if len(page) == per {
			more = true
			break
		}
		page = append(page, d)
	}
	out := make([]HookDelivery, len(page))
	for i, d := range page {
		out[i] = *d
	}
	s.hooks.mu.Unlock()
	if more {
		q2 := url.Values{"per_page": {strconv.Itoa(per)}, "cursor": {fmt.Sprintf("v1_%d", page[len(page)-1].ID)}}
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, s.URL, r.URL.Path, q2.Encode()))
	}
	writeJSON(w, http.StatusOK, out)
}

// hookRedeliver is POST /app/hook/deliveries/{id}/attempts: 202, then the same GUID and body delivered again
// (in the background, as on GitHub). Deliveries older than three days cannot be redelivered.
func (s *Server) hookRedeliver(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.hooks.mu.Lock()
	var d *HookDelivery
	for _, x := range s.hooks.deliveries {
		if x.ID == id {
			d = x
		}
	}
	s.hooks.mu.Unlock()
	if d == nil {
		notFound(w)
		return
	}
	if s.now().Sub(d.DeliveredAt) > 72*time.Hour {
		invalid(w, "Validation Failed: deliveries older than 3 days cannot be redelivered")
		return
	}
	s.hooks.inflight.Add(1)
	go func() {
		defer s.hooks.inflight.Done()
		s.attempt(d.GUID, d.Event, d.body, true)
	}()
	writeJSON(w, http.StatusAccepted, map[string]any{})
}
