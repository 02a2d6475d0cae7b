package config

import "net/url"

// Settings of Postgres.

// loadDatabase checks DATABASE_URL.
func loadDatabase(c *Config, get func(string) string, need Need) error {
	if c.DatabaseURL == "" {
		return &Error{"DATABASE_URL", "required, e.g. postgres://user:pass@localhost:5432/passbatch?sslmode=disable"}
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return &Error{"DATABASE_URL", "want a postgres://host/db URL"}
	}
	return nil
}
