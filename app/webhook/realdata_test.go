package webhook_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ghwebhooks"
)

// TestEveryRealPayload delivers every real payload in internal/ghwebhooks, signed, under its event: intake never
// answers 5xx nor calls a real delivery malformed; an event Ferry does not handle answers 204 and stores
// nothing; a redelivery of any of them answers 200 and changes nothing. Several real payloads carry the same
// commit for the same ref (an opened and a synchronize of one head): the later one is a replay of what the signed
// body already asked for, so it answers 200 "already deployed" and stores nothing (issue 11 item 7).
func TestEveryRealPayload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	handled := map[string]bool{"ping": true, "installation": true, "installation_repositories": true, "push": true, "pull_request": true,
		"check_run": true, "repository": true}
	events := []string{"check_run", "check_suite", "create", "delete", "deployment", "deployment_status",
		"installation", "installation_repositories", "ping", "pull_request", "push", "repository"}
	seen := map[string]bool{} // the ref and commit of every push and pull_request delivered so far
	// Example payloads GitHub itself would not send: they get the clear 400 of a malformed body, store nothing.
	quirks := map[string]string{
		"check_run/rerequested.payload.json":                   "its timestamps read 2018-04-25 20:42:10, not RFC 3339 as GitHub sends them",
		"check_run/rerequested.with-organization.payload.json": "its timestamps read 2018-04-25 20:42:10, not RFC 3339 as GitHub sends them",
	}
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
			key, judged := refAndCommit(event, body)
			repeat := judged && seen[key]
			if key != "" && w.Code == http.StatusAccepted {
				seen[key] = true
			}
			switch {
			case quirks[name] != "":
				if w.Code != http.StatusBadRequest || e.counts() != before {
					t.Errorf("%s (%s): status %d, counts %+v -> %+v; want 400 and nothing stored", name, quirks[name], w.Code, before, e.counts())
				}
				continue
			case repeat:
				// Only the delivery itself is recorded, so that its redelivery is recognised too.
				after := e.counts()
				after.deliveries = before.deliveries
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "already deployed") || after != before {
					t.Errorf("%s (a commit already delivered for its ref): status %d (%s), counts %+v -> %+v; want 200 already deployed and nothing stored", name, w.Code, w.Body.String(), before, e.counts())
				}
				continue
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

// refAndCommit names what a push or pull_request delivery asks to deploy (repository, ref and commit), or ""
// for deliveries that deploy nothing (tag pushes, deleted branches, closed pull requests); judged says whether
// intake dedups it on that (pushes and synchronize: an opened or reopened pull request always builds).
func refAndCommit(event string, body []byte) (key string, judged bool) {
	var p struct {
		Ref, After, Action string
		Deleted            bool
		Number             int
		Repository         struct {
			FullName string `json:"full_name"`
		}
		PullRequest struct {
			Head struct{ SHA string }
		} `json:"pull_request"`
	}
	if json.Unmarshal(body, &p) != nil {
		return "", false
	}
	switch {
	case event == "push" && !p.Deleted && strings.HasPrefix(p.Ref, "refs/heads/"):
		return fmt.Sprintf("%s push %s %s", p.Repository.FullName, p.Ref, p.After), true
	case event == "pull_request" && (p.Action == "opened" || p.Action == "synchronize" || p.Action == "reopened"):
		return fmt.Sprintf("%s pr %d %s", p.Repository.FullName, p.Number, p.PullRequest.Head.SHA), p.Action == "synchronize"
	}
	return "", false
}
