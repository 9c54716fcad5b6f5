package siteconfig

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
