package migrations

// Files exposes the embedded migrations to the external tests, which cannot be in this package: they use
// internal/pgtest, which imports it.
var Files = files

// RunCommand runs `ferry migrate` with a chosen environment.
var RunCommand = command
