package ghreport

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// HookDelivery is one attempt GitHub made to deliver one of the App's webhooks. A redelivery is another attempt
// with the same GUID (the X-GitHub-Delivery header) and its own ID.
type HookDelivery struct {
	ID          int64
	GUID        string
	DeliveredAt time.Time
	Redelivery  bool
	// StatusCode is what the App answered; 0 when GitHub got no answer (a closed port, a timeout).
	StatusCode int
	Event      string
	Action     string
}

// HookDeliveriesParams bounds a listing.
type HookDeliveriesParams struct {
	// Since stops the listing at the first delivery older than this (GitHub lists newest first).
	Since time.Time
	// MaxPages bounds the pages fetched (100 deliveries each). Default 10.
	MaxPages int
}

// appClient is a go-github client authenticated as the App itself (a JWT), for the /app endpoints.
func (a *App) appClient() *Reporter {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.jwtReporter == nil {
		atr := ghinstallation.NewAppsTransportFromPrivateKey(a.cfg.Transport, a.appID, a.key)
		atr.BaseURL = strings.TrimSuffix(a.root.String(), "/")
		a.jwtReporter = newReporter(a.cfg, newClient(a.cfg, a.root, atr))
	}
	return a.jwtReporter
}

// HookDeliveries lists the App's recent webhook deliveries, newest first, following the Link header's cursor
// (GET /app/hook/deliveries, as the App).
func (a *App) HookDeliveries(ctx context.Context, p HookDeliveriesParams) ([]HookDelivery, error) {
	if p.MaxPages <= 0 {
		p.MaxPages = 10
	}
	r := a.appClient()
	var out []HookDelivery
	opts := &github.ListCursorOptions{PerPage: 100}
	for page := 0; page < p.MaxPages; page++ {
		var batch []*github.HookDelivery
		var resp *github.Response
		err := r.retry(ctx, "list the App's webhook deliveries", permNone, func(ctx context.Context) error {
			var err error
			batch, resp, err = r.client.Apps.ListHookDeliveries(ctx, opts)
			return err
		})
		if err != nil {
			return out, err
		}
		for _, d := range batch {
			hd := HookDelivery{ID: d.GetID(), GUID: d.GetGUID(), DeliveredAt: d.GetDeliveredAt().Time,
				Redelivery: d.GetRedelivery(), StatusCode: d.GetStatusCode(), Event: d.GetEvent(), Action: d.GetAction()}
			if !p.Since.IsZero() && hd.DeliveredAt.Before(p.Since) {
				return out, nil
			}
			out = append(out, hd)
		}
		if resp.Cursor == "" || len(batch) == 0 {
			return out, nil
		}
		opts.Cursor = resp.Cursor
	}
	return out, nil
}

// HookRedeliver asks GitHub to deliver a delivery again (POST /app/hook/deliveries/{id}/attempts, as the App).
// GitHub answers 202 and sends it with the same GUID, so intake's dedup makes a repeat harmless.
func (a *App) HookRedeliver(ctx context.Context, deliveryID int64) error {
	if deliveryID <= 0 {
		return ferry.Errorf(ferry.EINVALID, "redeliver a webhook: no delivery id")
	}
	r := a.appClient()
	return r.retry(ctx, "redeliver a webhook", permNone, func(ctx context.Context) error {
		_, _, err := r.client.Apps.RedeliverHookDelivery(ctx, deliveryID)
		var accepted *github.AcceptedError
		if errors.As(err, &accepted) {
			return nil // 202 is the documented answer
		}
		return err
	})
}
