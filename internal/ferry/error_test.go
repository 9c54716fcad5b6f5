package ferry

import (
	"errors"
	"testing"
)

func TestErrorfCauseOnce(t *testing.T) {
	cause := errors.New("connection refused")
	err := Errorf(EUNAVAILABLE, "get %s: %w", "k", cause)
	if got, want := err.Error(), "get k: connection refused"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Fatal("the cause is lost")
	}
	if got, want := (&Error{Code: EINVALID, Message: "bad flag", Err: cause}).Error(), "bad flag: connection refused"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
