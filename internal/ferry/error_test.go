package ferry

import (
	"errors"
	"fmt"
	"strings"
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

func TestErrorMessageHidesOutageCause(t *testing.T) {
	cause := errors.New("failed to connect to `user=postgres database=ferry`: /tmp/.s.PGSQL.5432 (/tmp): dial error")
	err := fmt.Errorf("check session: %w", &Error{Code: EUNAVAILABLE, Message: "get session: the database is unreachable", Err: cause})
	if got := ErrorMessage(err); got != "get session: the database is unreachable" {
		t.Fatalf("ErrorMessage = %q", got)
	}
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "user=postgres") {
		t.Fatal("the cause is lost for the log")
	}
	if got := ErrorMessage(&Error{Code: EINVALID, Message: "bad flag", Err: cause}); !strings.Contains(got, "user=postgres") {
		t.Fatalf("an invalid-input message lost its cause: %q", got)
	}
}
