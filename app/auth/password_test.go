package auth_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/app/auth"
)

func TestPasswordHash(t *testing.T) {
	h1, err := auth.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := auth.HashPassword("correct horse")
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") || h1 == h2 {
		t.Fatalf("hashes %q %q: want argon2id PHC strings with distinct salts", h1, h2)
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horse ": false, "": false, "Correct horse": false} {
		if ok, err := auth.CheckPassword(h1, pw); err != nil || ok != want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", "$argon2id$v=18$m=1,t=1,p=1$c2FsdA$a2V5",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=8,t=1,p=1$!!$a2V5"} {
		if _, err := auth.CheckPassword(bad, "x"); err == nil {
			t.Errorf("CheckPassword accepted the malformed hash %q", bad)
		}
	}
}

var bigParam = regexp.MustCompile(`[mt]=(\d+)`)

// FuzzCheckPassword: no stored string, however corrupt, panics the log-in, and a real hash still verifies.
func FuzzCheckPassword(f *testing.F) {
	valid, _ := auth.HashPassword("pw")
	f.Add(valid, "pw")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5aw", "x")
	f.Add("$argon2id$$$$", "")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		for _, m := range bigParam.FindAllStringSubmatch(hash, -1) {
			if n, err := strconv.Atoi(m[1]); err != nil || n > 4096 { // keep each run cheap
				return
			}
		}
		ok, err := auth.CheckPassword(hash, pw)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
	})
}
