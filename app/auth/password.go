package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Argon2id parameters: OWASP's recommended floor (19 MiB, 2 passes, 1 lane), which costs a few tens of
// milliseconds per log-in on one core. The parameters live in each hash, so raising them later only affects
// new hashes.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// Password limits. The upper bound stops a megabyte "password" from costing an argon2 pass over it.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

var b64 = base64.RawStdEncoding

// HashPassword hashes password with argon2id and a fresh salt into the PHC string form
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash) that CheckPassword reads.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches hash, comparing in constant time. A malformed hash is an
// error, not a mismatch, so that a corrupted row is noticed.
func CheckPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, ferry.Errorf(ferry.EINTERNAL, "check password: the stored hash is not an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ferry.Errorf(ferry.EINTERNAL, "check password: unsupported argon2 version %q", parts[2])
	}
	var mem, iter uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iter, &threads); err != nil ||
		mem == 0 || mem > 1<<18 || iter == 0 || iter > 100 || threads == 0 {
		return false, ferry.Errorf(ferry.EINTERNAL, "check password: bad argon2 parameters %q", parts[3])
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ferry.Errorf(ferry.EINTERNAL, "check password: bad salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 128 {
		return false, ferry.Errorf(ferry.EINTERNAL, "check password: bad key")
	}
	got := argon2.IDKey([]byte(password), salt, iter, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is checked against when an account does not exist, so that "no such account" takes as long as
// "wrong password" and response times do not reveal which emails have accounts. It is made on first use (New
// warms it), not at package init: one argon2id pass costs about 200 ms and 19 MiB, which every `ferry` process
// (build, publish, proxy) would otherwise pay at start.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("ferry-dummy-password")
	return h
})
