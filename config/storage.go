package config

import (
	"net/url"
	"strconv"
)

// Settings of file storage.

// S3 is how to reach an S3-compatible bucket.
type S3 struct {
	// Endpoint is host[:port] (S3_ENDPOINT). Default s3.amazonaws.com.
	Endpoint string
	// Insecure speaks plain HTTP (S3_INSECURE=true).
	Insecure bool
	// AccessKeyID, SecretAccessKey and Region sign the requests
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
	AccessKeyID, SecretAccessKey, Region string
}

// loadStorage reads STORAGE_DIR, STORAGE_URL and the S3 settings.
func loadStorage(c *Config, get func(string) string, need Need) error {
	if c.StorageDir == "" {
		c.StorageDir = "./.data/files"
	}
	if c.StorageURL != "" {
		if u, err := url.Parse(c.StorageURL); err != nil || u.Scheme != "s3" || u.Host == "" {
			return &Error{"STORAGE_URL", "want s3://bucket/prefix, or empty for STORAGE_DIR"}
		}
	}
	c.S3 = S3{Endpoint: get("S3_ENDPOINT"), AccessKeyID: get("AWS_ACCESS_KEY_ID"), SecretAccessKey: get("AWS_SECRET_ACCESS_KEY"), Region: get("AWS_REGION")}
	if v := get("S3_INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &Error{"S3_INSECURE", "want true or false"}
		}
		c.S3.Insecure = b
	}
	return nil
}
