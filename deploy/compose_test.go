// Package deploy_test checks deploy/compose.yaml: it parses, every file it
// references exists, and what it mounts into the containers is valid where
// they read it (leadpulse's config and rules, Prometheus' rule files and
// targets, Grafana's provisioning).
package deploy_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/leadpulse/leadpulse/config"
	"github.com/leadpulse/leadpulse/rules"
)

type compose struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       *build            `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	EnvFile     []string          `yaml:"env_file"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	Restart string `yaml:"restart"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// mount is a bind mount: a host path (relative to compose.yaml) at a
// container path.
type mount struct{ host, container string }

func loadCompose(t *testing.T) compose {
	t.Helper()
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

func (s service) mounts(t *testing.T, named map[string]any) []mount {
	t.Helper()
	var ms []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			t.Errorf("volume %q: want SOURCE:TARGET[:ro]", v)
			continue
		}
		src, dst := parts[0], parts[1]
		if !strings.HasPrefix(dst, "/") {
			t.Errorf("volume %q: the target must be an absolute container path", v)
		}
		if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
			if _, ok := named[src]; !ok {
				t.Errorf("volume %q names %q, which is not under volumes:", v, src)
			}
			continue
		}
		ms = append(ms, mount{host: filepath.Clean(src), container: dst})
	}
	return ms
}

func TestComposeFilesExist(t *testing.T) {
	c := loadCompose(t)
	for _, want := range []string{"redpanda", "redis", "leadpulse", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("no service %q", want)
		}
	}
	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			switch {
			case s.Image == "" && s.Build == nil:
				t.Error("neither image nor build")
			case s.Build == nil && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")):
				t.Errorf("image %q is not pinned to a version", s.Image)
			}
			if b := s.Build; b != nil {
				if fi, err := os.Stat(b.Context); err != nil || !fi.IsDir() {
					t.Errorf("build context %q: %v", b.Context, err)
				}
				if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
					t.Errorf("dockerfile: %v", err)
				}
			}
			for _, m := range s.mounts(t, c.Volumes) {
				if _, err := os.Stat(m.host); err != nil {
					t.Errorf("mounted file: %v", err)
				}
			}
			for _, f := range s.EnvFile {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("env_file: %v", err)
				}
			}
			for _, p := range s.Ports {
				// HOST_IP:HOST_PORT:CONTAINER_PORT, HOST_IP loopback.
				parts := strings.Split(p, ":")
				if len(parts) != 3 || !net.ParseIP(parts[0]).IsLoopback() {
					t.Errorf("port %q is not published on a loopback address only (write 127.0.0.1:PORT:PORT)", p)
				}
			}
			var deps []string
			switch s.DependsOn.Kind {
			case yaml.SequenceNode:
				_ = s.DependsOn.Decode(&deps)
			case yaml.MappingNode:
				var m map[string]any
				_ = s.DependsOn.Decode(&m)
				for k := range m {
					deps = append(deps, k)
				}
			}
			for _, d := range deps {
				if _, ok := c.Services[d]; !ok {
					t.Errorf("depends on %q, which is not a service", d)
				}
			}
			if h := s.Healthcheck; h != nil && (len(h.Test) < 2 || h.Test[0] != "CMD") {
				t.Errorf("healthcheck test %q: want [CMD, …]", h.Test)
			}
		})
	}
}

// stage copies a service's bind mounts into a directory laid out like the
// container's file system, and returns the directory.
func stage(t *testing.T, ms []mount) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range ms {
		data, err := os.ReadFile(m.host)
		if err != nil {
			t.Fatalf("mounted file: %v", err)
		}
		dst := filepath.Join(root, m.container)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestComposeLeadpulseConfig loads the leadpulse config the way the
// container does (its mounts, its environment, its --config) and the rules
// it names.
func TestComposeLeadpulseConfig(t *testing.T) {
	c := loadCompose(t)
	s := c.Services["leadpulse"]
	i := slices.Index(s.Command, "--config")
	if len(s.Command) < 3 || s.Command[0] != "run" || i < 0 || i+1 >= len(s.Command) {
		t.Fatalf("command %q: want run --config FILE", s.Command)
	}
	root := stage(t, s.mounts(t, c.Volumes))
	var env []string
	for k, v := range s.Environment {
		env = append(env, k+"="+v)
	}
	cfg, err := config.Load(filepath.Join(root, s.Command[i+1]), env)
	if err != nil {
		t.Fatalf("the leadpulse config does not load in the container:\n%v", err)
	}
	if _, err := rules.LoadFile(cfg.Rules); err != nil {
		t.Errorf("the rules it names: %v", err)
	}
	// The brokers and Redis are services of the compose file.
	for _, addr := range append(append([]string{}, cfg.Kafka.Brokers...), cfg.Redis.Addr...) {
		host, _, err := net.SplitHostPort(addr)
		if _, ok := c.Services[host]; err != nil || !ok {
			t.Errorf("address %q is not a compose service", addr)
		}
	}
	if cfg.AdminToken == "" {
		t.Error("http listens beyond loopback in the container: an admin token is needed")
	}
}

// TestComposePrometheusAndGrafana checks what Prometheus and Grafana read:
// the rule files and scrape targets, the data source and the dashboard
// provider's folder.
func TestComposePrometheusAndGrafana(t *testing.T) {
	c := loadCompose(t)
	prom := c.Services["prometheus"]
	root := stage(t, prom.mounts(t, c.Volumes))
	var pcfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(root, flagValue(t, prom.Command, "--config.file")), &pcfg)
	if len(pcfg.RuleFiles) == 0 {
		t.Error("prometheus loads no rule files")
	}
	for _, f := range pcfg.RuleFiles {
		var rf struct {
			Groups []any `yaml:"groups"`
		}
		readYAML(t, filepath.Join(root, f), &rf)
		if len(rf.Groups) == 0 {
			t.Errorf("rule file %s has no groups", f)
		}
	}
	jobs := map[string]bool{}
	for _, sc := range pcfg.ScrapeConfigs {
		jobs[sc.JobName] = true
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, _, _ := net.SplitHostPort(target)
				if _, ok := c.Services[host]; !ok {
					t.Errorf("scrape target %q is not a compose service", target)
				}
			}
		}
	}
	if !jobs["leadpulse"] {
		t.Error(`no scrape job "leadpulse": the alerts expect job="leadpulse"`)
	}

	graf := c.Services["grafana"]
	ms := graf.mounts(t, c.Volumes)
	root = stage(t, ms)
	var ds struct {
		Datasources []struct {
			Type, URL string
		} `yaml:"datasources"`
	}
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	var sawDS, sawDP bool
	for _, m := range ms {
		switch {
		case strings.HasPrefix(m.container, "/etc/grafana/provisioning/datasources/"):
			readYAML(t, filepath.Join(root, m.container), &ds)
			sawDS = true
		case strings.HasPrefix(m.container, "/etc/grafana/provisioning/dashboards/"):
			readYAML(t, filepath.Join(root, m.container), &dp)
			sawDP = true
		}
	}
	if !sawDS || !sawDP {
		t.Fatalf("grafana: data source provisioned %v, dashboards provisioned %v", sawDS, sawDP)
	}
	for _, d := range ds.Datasources {
		if d.Type == "prometheus" && !strings.Contains(d.URL, "prometheus:9090") {
			t.Errorf("data source URL %q is not the compose prometheus", d.URL)
		}
	}
	for _, p := range dp.Providers {
		dashboards, _ := filepath.Glob(filepath.Join(root, p.Options.Path, "*.json"))
		if len(dashboards) == 0 {
			t.Errorf("dashboard provider folder %s holds no dashboard", p.Options.Path)
		}
		for _, d := range dashboards {
			var dash struct {
				Title  string `json:"title" yaml:"title"`
				Panels []any  `json:"panels" yaml:"panels"`
			}
			readYAML(t, d, &dash) // JSON is YAML
			if dash.Title == "" || len(dash.Panels) == 0 {
				t.Errorf("%s: not a dashboard (title %q, %d panels)", d, dash.Title, len(dash.Panels))
			}
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	t.Fatal(fmt.Sprintf("no %s in %q", name, args))
	return ""
}
