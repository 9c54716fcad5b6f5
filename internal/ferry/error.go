// Package ferry holds the domain vocabulary that every part of Ferry shares: the one error type, whose codes
// decide HTTP statuses, process exit codes and whether the queue retries a job.
package ferry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error codes. They are few on purpose: each one answers a question a caller must decide on (retry? show the
// message to the user? which HTTP status?), not a place in the code.
const (
	// EINVALID: the caller's input is wrong (a bad flag, a malformed ferry.json, a hostile path). Final.
	EINVALID = "invalid"
	// ENOTFOUND: the thing asked for does not exist (or the caller may not know that it does). Final.
	ENOTFOUND = "not_found"
	// ECONFLICT: the request contradicts current state (a duplicate name). Final.
	ECONFLICT = "conflict"
	// ETOOLARGE: an input exceeds a limit (file count, body size, output size). Final.
	ETOOLARGE = "too_large"
	// EUNAUTHORIZED: no or bad credentials.
	EUNAUTHORIZED = "unauthorized"
	// EFORBIDDEN: credentials are fine but do not reach this resource.
	EFORBIDDEN = "forbidden"
	// EBUILD: the user's own build failed (their code, their commands). Final: a retry fails the same way.
	EBUILD = "build_failed"
	// EUNAVAILABLE: a dependency (storage, GitHub, the database) is down or throttling. Retried.
	EUNAVAILABLE = "unavailable"
	// EINTERNAL: anything else; treated as an infrastructure error and retried.
	EINTERNAL = "internal"
)

// Error is Ferry's one error type. Message is safe to show to users; Err keeps the cause for logs and errors.Is.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error renders the message followed by the cause, so that logs carry the whole chain.
func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		if strings.HasSuffix(e.Message, e.Err.Error()) { // Errorf's message already ends with its %w cause
			return e.Message
		}
		return e.Message + ": " + e.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Message
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a user-facing message. A %w verb in format also becomes the cause.
func Errorf(code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// Wrap gives err a code without changing its message; a nil err stays nil.
func Wrap(code string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// ErrorCode returns the code of the outermost *Error in err's chain, EINTERNAL for other errors, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing text of err. Internal errors get a generic text, and unavailable ones
// their message without its cause, so that details (hosts, sockets, credentials, stack-ish text) never leak to
// users; log the error itself for operators.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		// An outage's cause names hosts, sockets and database users (pgconn: "failed to connect to
		// `user=... database=...`: /tmp/.s.PGSQL.5432"): users get the message, logs get the cause.
		if e.Code == EUNAVAILABLE && e.Message != "" {
			return e.Message
		}
		return e.Error()
	}
	return "internal error"
}

// IsRetryable reports whether a job that failed with err should be tried again: only infrastructure errors are.
func IsRetryable(err error) bool {
	switch ErrorCode(err) {
	case EUNAVAILABLE, EINTERNAL:
		return true
	}
	return false
}

// HTTPStatus maps err's code to an HTTP status. It is the only place that does so.
func HTTPStatus(err error) int {
	switch ErrorCode(err) {
	case "":
		return http.StatusOK
	case EINVALID, EBUILD:
		return http.StatusBadRequest
	case ENOTFOUND:
		return http.StatusNotFound
	case ECONFLICT:
		return http.StatusConflict
	case ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case EUNAUTHORIZED:
		return http.StatusUnauthorized
	case EFORBIDDEN:
		return http.StatusForbidden
	case EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Exit codes shared by every subcommand. The queue reads them from `ferry build` to decide on a retry.
const (
	ExitOK = 0
	// ExitInfra: an infrastructure error; the job may be retried.
	ExitInfra = 1
	// ExitUser: the user's build or input is at fault; a retry would fail the same way.
	ExitUser = 2
)

// ExitCode maps err to a process exit code: user-caused errors exit 2 and everything else 1.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if IsRetryable(err) {
		return ExitInfra
	}
	return ExitUser
}
