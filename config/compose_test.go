package config

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeSecretsAndDashboards: docker-compose.yml takes its secrets from
// the environment with no fallback (compose refuses to start without them)
// and publishes no asynqmon of its own (the api serves it behind the admin
// login, read-only).
func TestComposeSecretsAndDashboards(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
			Ports   []string `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for name, svc := range doc.Services {
		if strings.Contains(svc.Image, "asynqmon") || strings.Contains(strings.Join(svc.Command, " "), "asynqmon") {
			t.Errorf("service %s runs its own asynqmon (no login, full write access)", name)
		}
	}
	for _, v := range []string{"ADMIN_TOKEN", "SESSION_SECRET"} {
		uses := regexp.MustCompile(`\$\{`+v+`[^}]*\}`).FindAllString(string(raw), -1)
		if len(uses) == 0 {
			t.Errorf("%s is not taken from the environment", v)
		}
		for _, u := range uses {
			if !strings.HasPrefix(u, "${"+v+":?") {
				t.Errorf("%s has a fallback or may be empty: %s (want ${%s:?…})", v, u, v)
			}
		}
	}
	if strings.Contains(strings.ToLower(string(raw)), "change-me") {
		t.Error("docker-compose.yml still holds an example secret")
	}
}
