package config

import "net/url"

// Settings of Redis.

// loadRedis checks REDIS_URL (required when need.Redis).
func loadRedis(c *Config, get func(string) string, need Need) error {
	if need.Redis || c.RedisURL != "" {
		if c.RedisURL == "" {
			return &Error{"REDIS_URL", "required, e.g. redis://localhost:6379/0"}
		}
		u, err := url.Parse(c.RedisURL)
		if err != nil {
			return &Error{"REDIS_URL", "want a redis://, rediss://, redis-socket:// or redis-sentinel:// URL"}
		}
		switch u.Scheme {
		case "redis", "rediss", "redis-sentinel":
			if u.Host == "" {
				return &Error{"REDIS_URL", "want a host, e.g. redis://localhost:6379/0"}
			}
		case "redis-socket":
			if u.Path == "" {
				return &Error{"REDIS_URL", "want a socket path, e.g. redis-socket:///run/redis.sock"}
			}
		default:
			return &Error{"REDIS_URL", "want a redis://, rediss://, redis-socket:// or redis-sentinel:// URL"}
		}
	}
	return nil
}
