package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
)

// KEDA's ScaledObject and TriggerAuthentication (keda.sh/v1alpha1), the
// fields of KEDA v2's API that exist, so an unknown one is refused like in
// the typed Kubernetes structs (importing KEDA's module would bring its
// controller runtime).
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval  *int32          `json:"pollingInterval,omitempty"`
		CooldownPeriod   *int32          `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount *int32          `json:"idleReplicaCount,omitempty"`
		MinReplicaCount  *int32          `json:"minReplicaCount,omitempty"`
		MaxReplicaCount  *int32          `json:"maxReplicaCount,omitempty"`
		Advanced         json.RawMessage `json:"advanced,omitempty"`
		Triggers         []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			MetricType        string            `json:"metricType,omitempty"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef,omitempty"`
		Env []struct {
			Parameter     string `json:"parameter"`
			Name          string `json:"name"`
			ContainerName string `json:"containerName,omitempty"`
		} `json:"env,omitempty"`
	} `json:"spec"`
}

// kedaRedisMetadata are the parameters of KEDA's redis (list) scaler.
var kedaRedisMetadata = []string{"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "listName", "listLength",
	"activationListLength", "databaseIndex", "enableTLS", "unsafeSsl", "username", "usernameFromEnv", "passwordFromEnv"}

// rendered is a kustomization's objects, each decoded into its type.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	pdbs        map[string]*policyv1.PodDisruptionBudget
	policies    map[string]*networkingv1.NetworkPolicy
	scaled      map[string]*scaledObject
	auths       map[string]*triggerAuthentication
	namespaces  []string
	kinds       []string
}

// render runs kustomize on dir (no network, no plugins) and decodes every
// object strictly into its typed struct: an unknown field is an error.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := &rendered{deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, pdbs: map[string]*policyv1.PodDisruptionBudget{}, policies: map[string]*networkingv1.NetworkPolicy{},
		scaled: map[string]*scaledObject{}, auths: map[string]*triggerAuthentication{}}
	for _, r := range resources.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		gvk := r.GetGvk()
		key := gvk.ApiVersion() + " " + gvk.Kind
		var into any
		name := r.GetName()
		switch key {
		case "apps/v1 Deployment":
			into = keep(out.deployments, name)
		case "batch/v1 Job":
			into = keep(out.jobs, name)
		case "v1 Service":
			into = keep(out.services, name)
		case "v1 ConfigMap": // generated: name-<hash>
			into = keep(out.configMaps, name[:max(strings.LastIndex(name, "-"), 0)])
		case "v1 Namespace":
			out.namespaces, into = append(out.namespaces, name), &corev1.Namespace{}
		case "policy/v1 PodDisruptionBudget":
			into = keep(out.pdbs, name)
		case "networking.k8s.io/v1 NetworkPolicy":
			into = keep(out.policies, name)
		case "keda.sh/v1alpha1 ScaledObject":
			into = keep(out.scaled, name)
		case "keda.sh/v1alpha1 TriggerAuthentication":
			into = keep(out.auths, name)
		default:
			t.Fatalf("%s: object %s %s of a kind this test does not know; add it", dir, key, name)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			t.Fatalf("%s: %s %s: %v", dir, key, name, err)
		}
		out.kinds = append(out.kinds, gvk.Kind)
	}
	return out
}

// keep makes a T for the object called name and files it in m.
func keep[T any](m map[string]*T, name string) *T {
	v := new(T)
	m[name] = v
	return v
}

func (r *rendered) podTemplates() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for n, d := range r.deployments {
		out[n] = &d.Spec.Template
	}
	for n, j := range r.jobs {
		out[n] = &j.Spec.Template
	}
	return out
}

// TestKubernetesProduction renders the production overlay and checks what
// running it depends on: probes, drain time, disruption budgets, KEDA on
// the queues asynq really writes, secrets from outside, policies that
// select the pods, pinned images, known settings.
func TestKubernetesProduction(t *testing.T) {
	t.Parallel()
	r := render(t, "k8s/overlays/production")
	for _, want := range []string{"passbatch-api", "passbatch-worker", "passbatch-scheduler"} {
		d := r.deployments[want]
		if d == nil {
			t.Fatalf("no Deployment %s (have %v)", want, r.kinds)
		}
		if d.Namespace != "passbatch" {
			t.Errorf("%s in namespace %q", want, d.Namespace)
		}
	}
	if len(r.namespaces) != 1 || r.namespaces[0] != "passbatch" {
		t.Errorf("namespaces %v", r.namespaces)
	}
	api := r.deployments["passbatch-api"]
	if *api.Spec.Replicas < 2 {
		t.Errorf("api replicas %d, want at least 2", *api.Spec.Replicas)
	}
	c := api.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("api probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	for _, name := range []string{"passbatch-api", "passbatch-scheduler"} {
		pdb := r.pdbs[name]
		if pdb == nil || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != name {
			t.Errorf("no PodDisruptionBudget selecting %s", name)
		}
	}
	if n := *r.deployments["passbatch-scheduler"].Spec.Replicas; n < 2 {
		t.Errorf("scheduler replicas %d, want 2 (duplicates are safe)", n)
	}
	// The drain: SHUTDOWN_TIMEOUT from the config, well inside the grace.
	cfg := r.configMaps["passbatch-config"]
	if cfg == nil {
		t.Fatal("no passbatch-config ConfigMap")
	}
	shutdown, err := time.ParseDuration(cfg.Data["SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("SHUTDOWN_TIMEOUT %q: %v", cfg.Data["SHUTDOWN_TIMEOUT"], err)
	}
	for n, d := range r.deployments {
		grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
		if grace < shutdown+3*time.Second {
			t.Errorf("%s: terminationGracePeriodSeconds %s does not cover SHUTDOWN_TIMEOUT %s", n, grace, shutdown)
		}
	}
	if cfg.Data["STORAGE_URL"] == "" || cfg.Data["PARTITIONS"] != "auto" {
		t.Errorf("production config %v: want exports in S3 and PARTITIONS=auto", cfg.Data)
	}
	readme, _ := os.ReadFile("../README.md")
	for k := range cfg.Data {
		if !strings.Contains(string(readme), "`"+k+"`") {
			t.Errorf("config %s is not a setting the README documents", k)
		}
	}
	// Secrets come from outside (no Secret is rendered), and each pod reads
	// only the ones its process needs: the scheduler holds no admin token
	// and no storage key, the migration only the database's URL.
	secrets := map[string][]string{
		"passbatch-api":       {"passbatch-database", "passbatch-redis", "passbatch-storage", "passbatch-web"},
		"passbatch-worker":    {"passbatch-database", "passbatch-notify", "passbatch-redis", "passbatch-storage"},
		"passbatch-scheduler": {"passbatch-database", "passbatch-redis"},
	}
	for n, p := range r.podTemplates() {
		var read []string
		for _, c := range p.Spec.Containers {
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					read = append(read, e.SecretRef.Name)
				}
			}
			if len(c.Env) > 0 {
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						read = append(read, e.ValueFrom.SecretKeyRef.Name)
					}
				}
			}
			if !strings.HasPrefix(c.Image, "registry.example.com/passbatch:") || strings.HasSuffix(c.Image, ":latest") {
				t.Errorf("%s: image %q, want a pinned release", n, c.Image)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: no memory request and limit", n)
			}
		}
		slices.Sort(read)
		if want := secrets[n]; strings.Join(read, ",") != strings.Join(want, ",") {
			t.Errorf("%s reads secrets %v, want exactly %v", n, read, want)
		}
		if a := p.Spec.AutomountServiceAccountToken; a == nil || *a {
			t.Errorf("%s: mounts a service-account token it never uses", n)
		}
		if p.Labels["app.kubernetes.io/part-of"] != "passbatch" {
			t.Errorf("%s: pods not labelled part-of=passbatch, so the Redis and Postgres policies would refuse them", n)
		}
		if sc := p.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: may run as root (the namespace enforces restricted)", n)
		}
	}
	if a := r.auths["passbatch-redis"]; a == nil || len(a.Spec.SecretTargetRef) != 1 || a.Spec.SecretTargetRef[0].Name != "passbatch-redis" {
		t.Errorf("KEDA's Redis password: %+v, want it from passbatch-redis", a)
	}
	// Production trusts only its ingress for X-Forwarded-For, not a /8.
	for _, p := range strings.Split(cfg.Data["TRUSTED_PROXIES"], ",") {
		if pr, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil || pr.Bits() < 24 {
			t.Errorf("TRUSTED_PROXIES %q: want the ingress's own addresses (a /24 or narrower)", cfg.Data["TRUSTED_PROXIES"])
		}
	}
	for _, k := range r.kinds {
		if k == "Secret" {
			t.Error("a Secret is rendered: secrets must not have values in the repository")
		}
	}
	// KEDA scales the workers on the partition queue's pending list.
	so := r.scaled["passbatch-worker"]
	if so == nil || so.Spec.ScaleTargetRef.Name != "passbatch-worker" || *so.Spec.MaxReplicaCount != 32 || *so.Spec.MinReplicaCount != 2 {
		t.Fatalf("ScaledObject %+v", so)
	}
	lists := map[string]bool{}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "redis" || tr.AuthenticationRef == nil || r.auths[tr.AuthenticationRef.Name] == nil {
			t.Errorf("trigger %+v: want redis with a TriggerAuthentication", tr)
		}
		lists[tr.Metadata["listName"]] = true
		for k := range tr.Metadata {
			if !slices.Contains(kedaRedisMetadata, k) {
				t.Errorf("trigger %s: metadata %q is not a KEDA redis scaler parameter", tr.Name, k)
			}
		}
	}
	if !lists[fmt.Sprintf("asynq:{%s}:pending", batch.QueuePartition)] {
		t.Errorf("no trigger on the partition queue's pending list: %v", lists)
	}
	// Policies: deny by default, both ways; Redis and Postgres only from
	// our pods; out of the namespace only DNS, and HTTPS for the processes
	// that call out (storage, the webhook).
	if p := r.policies["passbatch-default-deny"]; p == nil || len(p.Spec.PodSelector.MatchLabels) != 0 || len(p.Spec.Ingress) != 0 ||
		len(p.Spec.Egress) != 0 || !slices.Contains(p.Spec.PolicyTypes, "Egress") || !slices.Contains(p.Spec.PolicyTypes, "Ingress") {
		t.Errorf("default-deny policy %+v: want no ingress and no egress", p)
	}
	if p := r.policies["passbatch-egress-https"]; p == nil || p.Spec.PodSelector.MatchExpressions == nil ||
		slices.Contains(p.Spec.PodSelector.MatchExpressions[0].Values, "passbatch-scheduler") {
		t.Errorf("HTTPS egress %+v: want it for the api and the workers only", p)
	}
	if p := r.policies["passbatch-api-http"]; p == nil || len(p.Spec.Ingress) == 0 || len(p.Spec.Ingress[0].From) == 0 {
		t.Errorf("api ingress %+v: want it from the ingress controller only", p)
	}
	for _, name := range []string{"passbatch-redis", "passbatch-postgres"} {
		p := r.policies[name]
		if p == nil || len(p.Spec.Ingress) != 1 || p.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/part-of"] != "passbatch" {
			t.Errorf("policy %s does not limit its ingress to passbatch's pods: %+v", name, p)
		}
	}
}

// TestKubernetesMigrate: the migration Job renders on its own, runs ptctl
// migrate once per release and cleans itself up.
func TestKubernetesMigrate(t *testing.T) {
	t.Parallel()
	r := render(t, "k8s/migrate")
	j := r.jobs["passbatch-migrate"]
	if j == nil || len(r.jobs) != 1 || len(r.deployments) != 0 {
		t.Fatalf("want just the migrate Job, have %v", r.kinds)
	}
	c := j.Spec.Template.Spec.Containers[0]
	if strings.Join(c.Command, " ") != "/usr/local/bin/ptctl migrate" || j.Spec.TTLSecondsAfterFinished == nil || j.Namespace != "passbatch" {
		t.Fatalf("migrate Job: command %v, ttl %v, namespace %q", c.Command, j.Spec.TTLSecondsAfterFinished, j.Namespace)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "passbatch-database" {
		t.Errorf("migrate Job reads %+v, want only passbatch-database", c.EnvFrom)
	}
	if a := j.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("migrate Job mounts a service-account token it never uses")
	}
}

// TestKubernetesBase: the base renders by itself too.
func TestKubernetesBase(t *testing.T) {
	t.Parallel()
	r := render(t, "k8s/base")
	if len(r.deployments) != 3 || len(r.scaled) != 1 || len(r.policies) != 8 {
		t.Fatalf("base: %v", r.kinds)
	}
}

// TestPendingListIsAsynqs: the list KEDA reads is where asynq keeps a
// queue's pending tasks (a key asynq could rename in a release).
func TestPendingListIsAsynqs(t *testing.T) {
	t.Parallel()
	rd := testenv.NewRedis(t)
	enqueueProbes(t, rd.URL, 3, []string{batch.QueuePartition})
	n, err := rd.Client.LLen(context.Background(), fmt.Sprintf("asynq:{%s}:pending", batch.QueuePartition)).Result()
	if err != nil || n != 3 {
		t.Fatalf("LLEN of the pending list: %d (%v), want the 3 tasks enqueued", n, err)
	}
}
