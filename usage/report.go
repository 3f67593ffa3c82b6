package usage

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
)

// DataDir is qwend's directory under the user's data directory:
// $XDG_DATA_HOME/qwend, else ~/.local/share/qwend.
func DataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "qwend"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: %w (set XDG_DATA_HOME or --ledger)", err)
	}
	return filepath.Join(home, ".local", "share", "qwend"), nil
}

// DefaultLedgerPath is the SQLite ledger `qwend serve` keeps by default.
func DefaultLedgerPath() (string, error) {
	d, err := DataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "ledger.db"), nil
}

// WriteReport prints groups as a table, JSON (the shape of GET
// /v1/usage/daily) or CSV, with costs in US dollars.
func WriteReport(w io.Writer, q Query, groups []Group, format string) error {
	by := string(q.GroupBy)
	if by == "" {
		by = string(ByUser)
	}
	header := []string{by, "requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd"}
	row := func(g Group) []string {
		return []string{g.Key, strconv.FormatInt(g.Requests, 10), strconv.FormatInt(g.Errors, 10), strconv.FormatInt(g.PromptTokens, 10),
			strconv.FormatInt(g.CachedTokens, 10), strconv.FormatInt(g.CompletionTokens, 10), strconv.FormatFloat(MicroToUSD(g.CostMicroUSD), 'f', 6, 64)}
	}
	switch format {
	case "json":
		data := make([]map[string]any, 0, len(groups))
		for _, g := range groups {
			data = append(data, map[string]any{by: g.Key, "requests": g.Requests, "errors": g.Errors, "prompt_tokens": g.PromptTokens,
				"cached_tokens": g.CachedTokens, "completion_tokens": g.CompletionTokens, "cost_usd": MicroToUSD(g.CostMicroUSD)})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"object": "list", "from": q.From, "to": q.To, "group_by": by, "data": data})
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write(header)
		for _, g := range groups {
			_ = cw.Write(row(g))
		}
		cw.Flush()
		return cw.Error()
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		line := func(cells []string) {
			for _, c := range cells {
				fmt.Fprint(tw, c, "\t")
			}
			fmt.Fprintln(tw)
		}
		line(header)
		for _, g := range groups {
			line(row(g))
		}
		return tw.Flush()
	}
	return fmt.Errorf("--format: %q is not table, json or csv", format)
}
