package config

import (
	"log/slog"
	"os"
)

// Settings of logs and traces.

// loadLogging reads LOG_LEVEL and LOG_FORMAT.
func loadLogging(c *Config, get func(string) string, need Need) error {
	c.LogLevel = slog.LevelInfo
	if v := get("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return &Error{"LOG_LEVEL", "want debug, info, warn or error"}
		}
	}
	switch c.LogFormat {
	case "", "json", "text":
	default:
		return &Error{"LOG_FORMAT", "want json or text"}
	}
	return nil
}

// Logger builds the process logger: JSON in production, text in a terminal
// (LOG_FORMAT overrides the guess).
func (c Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	format := c.LogFormat
	if format == "" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
