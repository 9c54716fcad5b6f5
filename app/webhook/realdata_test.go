package webhook_test

import (
	"net/http"
	"testing"

	"github.com/ferryhq/ferry/internal/ghwebhooks"
)

// TestEveryRealPayload delivers every real payload in internal/ghwebhooks, signed, under its event: intake never
// answers 5xx nor calls a real delivery malformed; an event Ferry does not handle answers 204 and stores
// nothing; a redelivery of any of them answers 200 and changes nothing.
func TestEveryRealPayload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	handled := map[string]bool{"ping": true, "installation": true, "installation_repositories": true, "push": true, "pull_request": true}
	events := []string{"check_run", "check_suite", "create", "delete", "deployment", "deployment_status",
		"installation", "installation_repositories", "ping", "pull_request", "push", "repository"}
	for _, event := range events {
		names := ghwebhooks.Names(event)
		if len(names) == 0 {
			t.Fatalf("no %s payloads in internal/ghwebhooks", event)
		}
		for _, name := range names {
			body := ghwebhooks.Payload(t, name)
			id := "real-" + name
			before := e.counts()
			w := e.send(delivery{event: event, id: id, body: body})
			switch {
			case !handled[event]:
				if w.Code != http.StatusNoContent || e.counts() != before {
					t.Errorf("%s (not handled): status %d, counts %+v -> %+v; want 204 and nothing stored", name, w.Code, before, e.counts())
				}
				continue
			case w.Code != http.StatusAccepted:
				t.Errorf("%s: status %d (%s), want 202", name, w.Code, w.Body.String())
				continue
			}
			after := e.counts()
			if w := e.send(delivery{event: event, id: id, body: body}); w.Code != http.StatusOK || e.counts() != after {
				t.Errorf("%s redelivered: status %d, counts %+v -> %+v; want 200 and nothing changed", name, w.Code, after, e.counts())
			}
		}
	}
}
