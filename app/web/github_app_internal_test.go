package web

import (
	"strings"
	"testing"
	"time"
)

// TestManifestState: a state checks only in the session (CSRF token) and for the user that made it, and only
// within the hour.
func TestManifestState(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	s := manifestState("csrf-a", 7, now)
	if !checkManifestState(s, "csrf-a", 7, now.Add(59*time.Minute)) {
		t.Fatal("a fresh state does not check")
	}
	for name, ok := range map[string]bool{
		"another session": checkManifestState(s, "csrf-b", 7, now),
		"another user":    checkManifestState(s, "csrf-a", 8, now),
		"expired":         checkManifestState(s, "csrf-a", 7, now.Add(61*time.Minute)),
		"no session":      checkManifestState(s, "", 7, now),
		"later expiry":    checkManifestState(strings.Replace(s, ".1800003600.", ".1900000000.", 1), "csrf-a", 7, now),
		"empty":           checkManifestState("", "csrf-a", 7, now),
	} {
		if ok {
			t.Errorf("%s: the state checks", name)
		}
	}
	if s2 := manifestState("csrf-a", 7, now); s2 == s {
		t.Error("two states are equal: the nonce is not random")
	}
}

// FuzzManifestState: no string but one that manifestState made for the session checks, and none panics.
func FuzzManifestState(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(manifestState("csrf", 1, now))
	f.Add("a.b.c")
	f.Add("..")
	f.Add("x.9999999999.y")
	f.Fuzz(func(t *testing.T, state string) {
		if checkManifestState(state, "other-csrf", 1, now) {
			t.Fatalf("%q checks for a session that did not make it", state)
		}
	})
}
