package store

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// WebhookDeliveryInsertParams is one GitHub webhook delivery.
type WebhookDeliveryInsertParams struct {
	ID             string // X-GitHub-Delivery
	Event          string // X-GitHub-Event
	Action         string
	InstallationID int64 // 0: none in the payload
}

// WebhookDeliveryInsert records a delivery and reports whether it is new. A redelivery (same ID) returns
// false and changes nothing, so webhook intake can run it first in its transaction and acknowledge a repeat
// without side effects.
func (s *Store) WebhookDeliveryInsert(ctx context.Context, p WebhookDeliveryInsertParams) (inserted bool, err error) {
	if p.ID == "" {
		return false, ferry.Errorf(ferry.EINVALID, "record webhook delivery: no X-GitHub-Delivery id")
	}
	tag, err := s.db.Exec(ctx, `
		INSERT INTO webhook_deliveries (id, event, action, installation_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`,
		p.ID, p.Event, p.Action, nullInt64(p.InstallationID))
	if err != nil {
		return false, dbError("record webhook delivery", err)
	}
	return tag.RowsAffected() == 1, nil
}

// WebhookDeliveryDeleteBefore forgets deliveries received before t and returns how many. GitHub redelivers
// within days, so a periodic prune with a week's margin keeps the table small without losing idempotency.
func (s *Store) WebhookDeliveryDeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM webhook_deliveries WHERE received_at < $1`, t)
	if err != nil {
		return 0, dbError("prune webhook deliveries", err)
	}
	return tag.RowsAffected(), nil
}
