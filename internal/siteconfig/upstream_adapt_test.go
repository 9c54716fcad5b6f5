package siteconfig

import "net/url"

// Adapters between the upstream-case harness and the API, kept apart so that the harness also runs against
// older versions of the package (to count the cases that agreed before a change).

func queryOf(rd Redirect) map[string]string {
	if len(rd.Query) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, q := range rd.Query {
		m[q.Key] = q.Value
	}
	return m
}

func unsetOf(hr HeaderRule) []string { return hr.Unset }

func headersOf(r *Rules, path string, add func(name, value string)) {
	r.Headers(path, add, func(string) { add("", "") })
}

// redirectQuery matches path with the raw query string query, decoded as the proxy decodes it.
func redirectQuery(r *Rules, path, query string) (Match, bool) {
	if query == "" {
		return r.Redirect(path, nil)
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return Match{}, false
	}
	return r.RedirectQuery(path, valuesQuery(vals), nil)
}

// valuesQuery is a Query over parsed query values.
type valuesQuery url.Values

func (v valuesQuery) Get(key string) (string, bool) {
	vs, ok := v[key]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}
