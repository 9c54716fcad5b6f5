package webhook

import (
	"context"
)

// PingHandler acknowledges the ping GitHub sends when the App's webhook is set up or edited, so that GitHub
// shows the hook as working.
type PingHandler struct{}

var _ EventHandler = PingHandler{}

// Handles names the event.
func (PingHandler) Handles() []string { return []string{"ping"} }

// Handle logs the ping; it changes nothing but the delivery record.
func (PingHandler) Handle(ctx context.Context, d *Delivery) (string, error) {
	d.Log.InfoContext(ctx, "webhook ping")
	return OutcomeAccepted, nil
}
