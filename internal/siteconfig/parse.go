package siteconfig

import (
	"errors"
	"io"
)

// TODO(issue 2): replaced by the real parsers.
var errTODO = errors.New("not implemented yet")

// ParseRedirects parses a Netlify-format _redirects file. Errors name the line ("_redirects:3: ...").
func ParseRedirects(r io.Reader) ([]Redirect, error) { return nil, errTODO }

// ParseHeaders parses a Netlify-format _headers file. Errors name the line ("_headers:7: ...").
func ParseHeaders(r io.Reader) ([]HeaderRule, error) { return nil, errTODO }

// ParseFile parses and validates ferry.json: an unknown key or a wrong type is an error naming the key.
func ParseFile(data []byte) (*File, error) { return nil, errTODO }
