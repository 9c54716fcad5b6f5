package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// WebhookDeliveriesKnown returns which of the delivery GUIDs (X-GitHub-Delivery) intake has recorded: the
// deliveries Ferry accepted, which a redelivery would change nothing for.
func (s *Store) WebhookDeliveriesKnown(ctx context.Context, guids []string) (map[string]bool, error) {
	known := map[string]bool{}
	if len(guids) == 0 {
		return known, nil
	}
	rows, err := s.db.Query(ctx, `SELECT id FROM webhook_deliveries WHERE id = ANY($1)`, guids)
	if err != nil {
		return nil, dbError("look up webhook deliveries", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError("look up webhook deliveries", err)
	}
	for _, id := range ids {
		known[id] = true
	}
	return known, nil
}
