package ghwebhooks

import (
	"encoding/json"
	"testing"
)

// TestPayloads: every short and long name reaches the same file, every payload is JSON, and a missing one
// says where payloads live.
func TestPayloads(t *testing.T) {
	long := Payload(t, "push/with-new-branch.payload.json")
	if string(Payload(t, "push/with-new-branch")) != string(long) {
		t.Fatal("short and long names differ")
	}
	if string(Payload(t, "ping")) != string(Payload(t, "ping/payload.json")) {
		t.Fatal("an event's name alone is not its payload.json")
	}
	for _, event := range []string{"check_run", "installation", "installation_repositories", "ping", "pull_request", "push", "repository"} {
		names := Names(event)
		if len(names) == 0 {
			t.Fatalf("no %s payloads", event)
		}
		for _, n := range names {
			var m map[string]any
			if err := json.Unmarshal(Payload(t, n), &m); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
	}
	if _, err := Read("push/nope"); err == nil {
		t.Fatal("a missing payload was found")
	}
	if _, err := files.ReadFile("payloads/LICENSE"); err != nil {
		t.Fatal("the MIT licence must travel with the payloads")
	}
}
