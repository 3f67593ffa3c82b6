package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Series that only a machine with NVML exports: the fallback reports GPU
// memory alone. They are checked only when the run had NVML.
var nvmlOnly = map[string]bool{
	"hw_gpu_utilization_ratio":   true,
	"hw_gpu_temperature_celsius": true,
	"hw_gpu_power_watts":         true,
}

var (
	seriesName = regexp.MustCompile(`\b(?:gen_ai|qwend|hw|traces)_[a-z0-9_]+\b`)
	// label matchers and grouping clauses hold label names, not series
	notSeries = regexp.MustCompile(`\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)`)
)

// checkDashboard parses the provisioned dashboard and asks Prometheus to
// run every query: each must parse, and each series it names must exist.
func checkDashboard(t *testing.T, prom string) {
	b, err := os.ReadFile(filepath.Join(root, "deploy/grafana/dashboards/qwend.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var names struct {
		Data []string `json:"data"`
	}
	if err := getJSON("http://"+prom+"/api/v1/label/__name__/values", &names); err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, n := range names.Data {
		held[n] = true
	}
	var nvml struct {
		Data struct {
			Result []any `json:"result"`
		} `json:"data"`
	}
	_ = getJSON("http://"+prom+"/api/v1/query?query="+url.QueryEscape(`hw_gpu_memory_limit_bytes{nvml_unavailable="false"}`), &nvml)
	haveNVML := len(nvml.Data.Result) > 0

	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			q := strings.NewReplacer("$__rate_interval", "1m", "$model", ".*").Replace(tg.Expr)
			resp, err := http.Get("http://" + prom + "/api/v1/query?query=" + url.QueryEscape(q))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("panel %q: Prometheus refused %s (status %d)", p.Title, tg.Expr, resp.StatusCode)
			}
			for _, n := range seriesName.FindAllString(notSeries.ReplaceAllString(q, " "), -1) {
				if nvmlOnly[n] && !haveNVML {
					continue
				}
				if !held[n] {
					t.Errorf("panel %q names %s, which Prometheus does not hold", p.Title, n)
				}
			}
		}
	}
	if exprs < 10 {
		t.Errorf("only %d queries in the dashboard", exprs)
	}
	t.Logf("%d dashboard queries checked (NVML series %s)", exprs, map[bool]string{true: "checked", false: "skipped: no NVML here"}[haveNVML])
}
