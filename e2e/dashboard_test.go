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

// Series the run does not produce: skipped when Prometheus does not hold
// them, with the reason. The ledger gauges (qwend_ledger_*) are not here:
// the run's qwend keeps its default SQLite ledger, so they exist; nor are
// qwend_drift_status and qwend_drift_requests, exported from the start.
var onDemand = map[string]string{
	"qwend_budget_refusals_total": "refusals exist only once a user's budget is spent",
	"qwend_drift_psi":             "drift figures exist only once both windows hold --drift-min-requests answered requests",
	"qwend_drift_ratio":           "drift figures exist only once both windows hold --drift-min-requests answered requests",
	"qwend_drift_share_ratio":     "drift figures exist only once both windows hold --drift-min-requests answered requests",
}

// dataSource is a panel's or a target's; the dashboard names it as an object.
type dataSource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// of returns the target's data source ds, else its panel's.
func (ds dataSource) of(panel dataSource) dataSource {
	if ds == (dataSource{}) {
		return panel
	}
	return ds
}

// prometheus tells whether ds is Prometheus, Grafana's default data source.
func (ds dataSource) prometheus() bool {
	switch {
	case ds.Type != "":
		return ds.Type == "prometheus"
	case ds.UID != "":
		return ds.UID == "prometheus"
	}
	return true
}

var (
	seriesName = regexp.MustCompile(`\b(?:gen_ai|qwend|hw|traces)_[a-z0-9_]+\b`)
	// label matchers and grouping clauses hold label names, not series
	notSeries = regexp.MustCompile(`\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)`)
)

// checkDashboard parses the provisioned dashboard and asks Prometheus to
// run every Prometheus query: each must parse, and each series it names must
// exist. SQL targets (the ledger's PostgreSQL data source) are not sent:
// their data source must be one Grafana is provisioned with.
func checkDashboard(t *testing.T, prom string) {
	b, err := os.ReadFile(filepath.Join(root, "deploy/grafana/dashboards/qwend.json"))
	if err != nil {
		t.Fatal(err)
	}
	provisioned, err := os.ReadFile(filepath.Join(root, "deploy/grafana/provisioning/datasources/datasources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title      string     `json:"title"`
			Datasource dataSource `json:"datasource"`
			Targets    []struct {
				Datasource dataSource `json:"datasource"`
				Expr       string     `json:"expr"`
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
	// GPU series come from GPUs alone (NVML's, or ggml's GPU devices), not
	// from the host's memory: a CPU-only machine has none
	haveGPU := held["hw_gpu_memory_limit_bytes"]

	exprs, others := 0, 0
	skipped := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if ds := tg.Datasource.of(p.Datasource); !ds.prometheus() {
				others++
				if !regexp.MustCompile(`(?m)^\s*uid:\s*` + regexp.QuoteMeta(ds.UID) + `\s*$`).Match(provisioned) {
					t.Errorf("panel %q: data source %q (%s) is not provisioned", p.Title, ds.UID, ds.Type)
				}
				continue
			}
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
				if strings.HasPrefix(n, "hw_gpu_") && !haveGPU {
					skipped[n] = "no GPU on this machine"
					continue
				}
				if nvmlOnly[n] && !haveNVML {
					continue
				}
				if why, ok := onDemand[n]; ok && !held[n] {
					skipped[n] = why
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
	t.Logf("%d dashboard queries checked, %d targets of other data sources left out (GPU series %s, NVML series %s)",
		exprs, others, map[bool]string{true: "checked", false: "skipped: no GPU here"}[haveGPU], map[bool]string{true: "checked", false: "skipped: no NVML here"}[haveNVML])
	for n, why := range skipped {
		t.Logf("%s not checked: %s", n, why)
	}
}
