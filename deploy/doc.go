// Package deploy holds what runs passbatch beyond one machine: the
// Kubernetes manifests (k8s/), the Grafana dashboard (grafana/) and the
// Prometheus alert rules (prometheus/). It has no code; its tests check
// that the manifests render and validate and that the dashboard and rules
// name only metrics the processes export.
package deploy
