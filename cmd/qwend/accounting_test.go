package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qwend/qwend/usage"
	"github.com/qwend/qwend/usage/usagetest"
)

func writePrices(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prices.yaml")
	// a dollar per million tokens of each kind: micro-dollars = tokens
	if err := os.WriteFile(p, []byte("version: test-1\nmodels:\n  tiny:\n    input_per_million: 1\n    cached_input_per_million: 1\n    output_per_million: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// todaysRows reads today's rows from the ledger at dsn.
func todaysRows(t *testing.T, dsn string) []usage.Row {
	t.Helper()
	store, err := usage.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	today := usage.Day(time.Now())
	rows, err := store.Rows(context.Background(), today, today)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

type dailyReport struct {
	Data []struct {
		User             string  `json:"user"`
		Feature          string  `json:"feature"`
		Requests         int64   `json:"requests"`
		Errors           int64   `json:"errors"`
		PromptTokens     int64   `json:"prompt_tokens"`
		CompletionTokens int64   `json:"completion_tokens"`
		CostUSD          float64 `json:"cost_usd"`
	} `json:"data"`
}

func getJSON(t *testing.T, url string, v any, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp
}

type usageOf struct {
	ID    string `json:"id"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// After a mixed load (plain, streamed, cancelled mid-stream, 400, 429),
// the ledger holds one row per request sent, under the X-Request-Id the
// client saw, with the tokens the responses reported; the usage API, the
// service log and the metrics agree with it. On SQLite and PostgreSQL.
func TestLedgerInvariant(t *testing.T) {
	usagetest.Each(t, func(t *testing.T, dsn string) {
		ts := startServer(t, nil, "--ledger", dsn, "--prices", writePrices(t), "--parallel", "2", "--queue-length", "0", "--ctx-size", "1024")
		sent := map[string]bool{}
		var wantPrompt, wantOutput int64
		send := func(path, body string, hdr ...string) (*http.Response, []byte) {
			id := fmt.Sprintf("inv-%d", len(sent))
			sent[id] = true
			return post(t, ts.URL+path, body, append([]string{"X-Request-Id", id}, hdr...)...)
		}
		for i := range 3 {
			resp, b := send("/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":"hi %d"}],"max_tokens":%d,"temperature":0}`, i, i+2), "X-Qwend-User", "alice", "X-Qwend-Feature", "chat")
			var u usageOf
			json.Unmarshal(b, &u)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			wantPrompt += u.Usage.PromptTokens
			wantOutput += u.Usage.CompletionTokens
		}
		// streamed, with usage, the user from the body
		_, b := send("/v1/completions", `{"prompt":"stream","max_tokens":5,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"user":"bob"}`)
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			line, _ := strings.CutPrefix(sc.Text(), "data: ")
			var u usageOf
			if json.Unmarshal([]byte(line), &u) == nil && u.Usage.CompletionTokens > 0 {
				wantPrompt += u.Usage.PromptTokens
				wantOutput += u.Usage.CompletionTokens
			}
		}
		// refused: a 400 and a context window error
		send("/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, "X-Qwend-User", "carol")
		send("/api/generate", `{"prompt":"`+strings.Repeat("lorem ipsum ", 1000)+`","options":{"num_predict":5}}`, "X-Qwend-User", "carol")
		// cancelled mid-stream: billed for what it used
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"long","max_tokens":900,"temperature":0,"stream":true}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", "inv-cancel")
		req.Header.Set("X-Qwend-User", "dave")
		sent["inv-cancel"] = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		br.ReadString('\n')
		// a second request while the two slots are one short: a 429 needs both
		// taken, so hold the other with another stream
		ctx2, cancel2 := context.WithCancel(context.Background())
		req2, _ := http.NewRequestWithContext(ctx2, "POST", ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"hold","max_tokens":900,"temperature":0,"stream":true}`))
		req2.Header.Set("Content-Type", "application/json")
		req2.Header.Set("X-Request-Id", "inv-hold")
		sent["inv-hold"] = true
		resp2, err := http.DefaultClient.Do(req2)
		if err != nil {
			t.Fatal(err)
		}
		bufio.NewReader(resp2.Body).ReadString('\n')
		r429, _ := send("/v1/completions", `{"prompt":"x","max_tokens":2}`)
		if r429.StatusCode != 429 {
			t.Errorf("want a 429 with both slots held, got %d", r429.StatusCode)
		}
		cancel()
		cancel2()
		resp.Body.Close()
		resp2.Body.Close()
		ts.Stop() // drains: every row is committed before serve returns

		rows := todaysRows(t, dsn)
		if len(rows) != len(sent) {
			t.Fatalf("%d ledger rows for %d requests", len(rows), len(sent))
		}
		byID := map[string]usage.Row{}
		var okPrompt, okOutput int64
		for _, r := range rows {
			if !sent[r.RequestID] {
				t.Errorf("row for a request never sent: %s", r.RequestID)
			}
			byID[r.RequestID] = r
			if r.ErrorType == "" && r.Status == 200 {
				okPrompt += r.PromptTokens
				okOutput += r.CompletionTokens
			}
			if r.CostMicroUSD != r.PromptTokens+r.CompletionTokens || r.ErrorType == "" && r.PriceVersion != "test-1" {
				t.Errorf("row %s cost %d for %d+%d tokens (version %q)", r.RequestID, r.CostMicroUSD, r.PromptTokens, r.CompletionTokens, r.PriceVersion)
			}
		}
		// the successful rows hold what the responses reported
		if okPrompt != wantPrompt || okOutput != wantOutput {
			t.Errorf("ledger tokens %d/%d, responses said %d/%d", okPrompt, okOutput, wantPrompt, wantOutput)
		}
		if c := byID["inv-cancel"]; c.ErrorType != "cancelled" || c.CompletionTokens < 1 || c.User != "dave" {
			t.Errorf("cancelled stream row %+v", c)
		}
		if r := byID["inv-0"]; r.User != "alice" || r.Feature != "chat" || len(r.TraceID) != 0 && len(r.TraceID) != 32 {
			t.Errorf("row %+v", r)
		}
		if r := byID["inv-3"]; r.User != "bob" || r.Feature != "POST /v1/completions" || r.ResponseID != "cmpl-inv-3" {
			t.Errorf("streamed row %+v", r)
		}
		if r := byID["inv-4"]; r.ErrorType != "invalid_request" || r.Status != 400 || r.User != "carol" {
			t.Errorf("refused row %+v", r)
		}
		if r := byID["inv-5"]; r.ErrorType != "context_window_exceeded" || r.PromptTokens != 0 || r.CostMicroUSD != 0 {
			t.Errorf("context window row %+v (nothing ran: nothing billed)", r)
		}
		// the service log has the same requests, with the same costs
		lines := strings.Split(strings.TrimSpace(ts.Service.String()), "\n")
		if len(lines) != len(sent) {
			t.Errorf("%d service log lines for %d requests", len(lines), len(sent))
		}
		for _, l := range lines {
			var m map[string]any
			json.Unmarshal([]byte(l), &m)
			r := byID[fmt.Sprint(m["request_id"])]
			if m["user"] != r.User || m["cost_usd"] != float64(r.CostMicroUSD)/1e6 {
				t.Errorf("log line %s, ledger row %+v", l, r)
			}
		}
	})
}

// The new user's path: send requests naming a user, read them back from the
// usage API with tokens and cost, and give feedback.
func TestUsageAPIAndFeedback(t *testing.T) {
	ts := startServer(t, nil, "--ledger", usagetest.SQLite(t), "--prices", writePrices(t))
	var ids []string
	for i, user := range []string{"alice", "alice", "bob"} {
		resp, b := post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":"q%d"}],"max_tokens":3}`, i), "X-Qwend-User", user)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var u usageOf
		json.Unmarshal(b, &u)
		ids = append(ids, resp.Header.Get("X-Request-Id"), u.ID)
	}
	var rep dailyReport
	if resp := getJSON(t, ts.URL+"/v1/usage/daily?group_by=user", &rep); resp.StatusCode != 200 {
		t.Fatalf("usage: %d", resp.StatusCode)
	}
	if len(rep.Data) != 2 || rep.Data[0].User != "alice" || rep.Data[0].Requests != 2 || rep.Data[1].User != "bob" ||
		rep.Data[0].CompletionTokens < 2 || rep.Data[0].CostUSD <= 0 {
		t.Errorf("report %+v", rep)
	}
	for q, names := range map[string]string{"?group_by=wizard": `"group_by"`, "?date=yesterday": `"date"`,
		"?date=2026-01-01&from=2026-01-01": `"date"`, "?from=2026-02-02&to=2026-01-01": `"to"`, "?to=someday": `"to"`} {
		req, _ := http.NewRequest("GET", ts.URL+"/v1/usage/daily"+q, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error struct{ Message string } }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(e.Error.Message, names) {
			t.Errorf("%s: %d %q, want a 400 naming %s", q, resp.StatusCode, e.Error.Message, names)
		}
	}
	// to alone is that one day
	var past dailyReport
	if resp := getJSON(t, ts.URL+"/v1/usage/daily?to=2026-01-01", &past); resp.StatusCode != 200 || len(past.Data) != 0 {
		t.Errorf("to alone: %d %+v", resp.StatusCode, past)
	}

	fb := func(body string) (int, map[string]any) {
		resp, b := post(t, ts.URL+"/v1/feedback", body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	// by X-Request-Id and by response id; the same id twice is one row
	if st, m := fb(fmt.Sprintf(`{"request_id":%q,"score":1,"id":"f1"}`, ids[0])); st != 201 || m["label"] != "up" {
		t.Errorf("feedback: %d %v", st, m)
	}
	if st, _ := fb(fmt.Sprintf(`{"request_id":%q,"score":1,"id":"f1"}`, ids[0])); st != 200 {
		t.Errorf("repeated feedback id: %d", st)
	}
	if st, m := fb(fmt.Sprintf(`{"request_id":%q,"label":"down","comment":"wrong"}`, ids[5])); st != 201 || m["request_id"] != ids[4] {
		t.Errorf("feedback by response id: %d %v", st, m)
	}
	for body, want := range map[string]int{
		`{"request_id":"nope","score":1}`:                          404,
		`{"request_id":"` + ids[0] + `","score":3}`:                400,
		`{"request_id":"` + ids[0] + `","label":"meh"}`:            400,
		`{"request_id":"` + ids[0] + `","score":1,"value":2}`:      400,
		`{"request_id":"` + ids[0] + `","score":1,"label":"down"}`: 400,
		`{"score":1}`: 400,
	} {
		if st, m := fb(body); st != want {
			t.Errorf("%s: %d, want %d (%v)", body, st, want, m)
		}
	}
	var mj struct {
		FeedbackTotal         int64   `json:"feedback_total"`
		FeedbackNegativeRatio float64 `json:"feedback_negative_ratio"`
		CostUSDTotal          float64 `json:"cost_usd_total"`
	}
	getJSON(t, ts.URL+"/metrics", &mj)
	if mj.FeedbackTotal != 2 || mj.FeedbackNegativeRatio != 0.5 || mj.CostUSDTotal <= 0 {
		t.Errorf("metrics %+v", mj)
	}
}

// With keys: no key or a wrong one is a 401 in the API's error shape; the
// key's user is the request's; a spent budget is a 429 budget_exceeded with
// Retry-After to midnight; a key sees only its own usage, an admin all.
func TestKeysAndBudgets(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	alice, err := usage.AddKey(keys, usage.Key{User: "alice", DailyTokens: 60})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := usage.AddKey(keys, usage.Key{User: "ops", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, nil, "--ledger", usagetest.SQLite(t), "--keys", keys)
	body := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":8,"temperature":0}`
	for _, auth := range []string{"", "Bearer nope", "Basic " + alice, "Bearer " + alice + "x"} {
		resp, b := post(t, ts.URL+"/v1/chat/completions", body, "Authorization", auth)
		if resp.StatusCode != 401 || !strings.Contains(string(b), "invalid_api_key") {
			t.Errorf("%q: %d %s", auth, resp.StatusCode, b)
		}
	}
	if resp, b := post(t, ts.URL+"/api/generate", `{"prompt":"x"}`); resp.StatusCode != 401 {
		t.Errorf("ollama without a key: %d %s", resp.StatusCode, b)
	}
	// the scheme is case-insensitive
	if resp, b := post(t, ts.URL+"/v1/chat/completions", body, "Authorization", "bearer "+admin); resp.StatusCode != 200 {
		t.Errorf("lower-case bearer: %d %s", resp.StatusCode, b)
	}
	// alice spends her 60 tokens, then is refused until midnight
	var refused *http.Response
	var refusedBody []byte
	for i := range 20 {
		resp, b := post(t, ts.URL+"/v1/chat/completions", body, "Authorization", "Bearer "+alice, "X-Request-Id", fmt.Sprintf("k-%d", i))
		if resp.StatusCode == 429 {
			refused, refusedBody = resp, b
			break
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	if refused == nil {
		t.Fatal("never refused past a 60-token budget")
	}
	var e struct {
		Error struct {
			Type   string         `json:"type"`
			Budget map[string]any `json:"budget"`
		} `json:"error"`
	}
	json.Unmarshal(refusedBody, &e)
	if e.Error.Type != "budget_exceeded" || e.Error.Budget["limit_tokens"] != 60.0 || e.Error.Budget["reset_at"] == nil || refused.Header.Get("Retry-After") == "" {
		t.Errorf("refusal %s retry-after %q", refusedBody, refused.Header.Get("Retry-After"))
	}
	// the admin is not limited and sees every user; alice sees herself only
	if resp, b := post(t, ts.URL+"/v1/chat/completions", body, "Authorization", "Bearer "+admin); resp.StatusCode != 200 {
		t.Errorf("admin: %d %s", resp.StatusCode, b)
	}
	var all, own dailyReport
	getJSON(t, ts.URL+"/v1/usage/daily", &all, "Authorization", "Bearer "+admin)
	getJSON(t, ts.URL+"/v1/usage/daily", &own, "Authorization", "Bearer "+alice)
	// the admin sees alice, ops, and the refused requests without a key (anonymous)
	if len(all.Data) != 3 || all.Data[1].User != "anonymous" || all.Data[1].Errors != 5 || len(own.Data) != 1 || own.Data[0].User != "alice" || own.Data[0].Errors < 1 {
		t.Errorf("admin sees %+v; alice sees %+v", all, own)
	}
	if resp := getJSON(t, ts.URL+"/v1/usage/daily", nil); resp.StatusCode != 401 {
		t.Errorf("usage without a key: %d", resp.StatusCode)
	}
}

// Concurrent requests at a budget's edge overshoot it by at most one
// request's reservation.
func TestBudgetOvershootIsBounded(t *testing.T) {
	const limit = 200
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	key, err := usage.AddKey(keys, usage.Key{User: "edge", DailyTokens: limit})
	if err != nil {
		t.Fatal(err)
	}
	ledger := usagetest.SQLite(t)
	ts := startServer(t, nil, "--ledger", ledger, "--keys", keys, "--parallel", "4", "--queue-length", "64")
	const maxTokens = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var maxPrompt int64
	for i := range 40 {
		wg.Go(func() {
			resp, b := post(t, ts.URL+"/v1/completions", fmt.Sprintf(`{"prompt":"edge %d","max_tokens":%d,"temperature":0}`, i, maxTokens), "Authorization", "Bearer "+key)
			var u usageOf
			json.Unmarshal(b, &u)
			mu.Lock()
			maxPrompt = max(maxPrompt, u.Usage.PromptTokens)
			mu.Unlock()
			if resp.StatusCode != 200 && resp.StatusCode != 429 {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	ts.Stop()
	store, err := usage.Open(context.Background(), ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	spent, err := store.Spend(context.Background(), usage.Day(time.Now()), "edge")
	if err != nil {
		t.Fatal(err)
	}
	if bound := limit + maxPrompt + maxTokens; spent.Tokens < limit || spent.Tokens > bound {
		t.Errorf("spent %d tokens of a %d budget; want it reached and at most %d", spent.Tokens, limit, bound)
	}
}

// SIGTERM under load loses no ledger row: every request that got an answer
// is in the ledger once the daemon has stopped. On SQLite and PostgreSQL.
func TestShutdownUnderLoadLosesNoRows(t *testing.T) {
	usagetest.Each(t, func(t *testing.T, dsn string) {
		ts := startServer(t, nil, "--ledger", dsn, "--parallel", "4", "--queue-length", "64")
		var mu sync.Mutex
		answered := map[string]bool{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("load-%d-%d", w, i)
					req, _ := http.NewRequest("POST", ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"load","max_tokens":8,"temperature":0}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Request-Id", id)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return // the listener closed
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					answered[id] = true
					n := len(answered)
					mu.Unlock()
					if n == 60 {
						go ts.Stop() // SIGTERM while the others are in flight
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		ts.Stop()
		rows := todaysRows(t, dsn)
		inLedger := map[string]bool{}
		for _, r := range rows {
			inLedger[r.RequestID] = true
		}
		for id := range answered {
			if !inLedger[id] {
				t.Errorf("request %s was answered but has no ledger row", id)
			}
		}
		if len(answered) < 60 || len(rows) < len(answered) {
			t.Errorf("%d answered, %d rows", len(answered), len(rows))
		}
	})
}

// PostgreSQL stopped under load: no request fails, the rows go to the
// spill file, and once the database is back they are replayed without
// duplicates. It needs a server of its own (scripts/with-postgres.sh) and
// runs when QWEND_TEST_POSTGRES_OUTAGE gives the outage's length (make test
// runs 5s, make soak a minute).
func TestLedgerSurvivesPostgresOutage(t *testing.T) {
	outage, err := time.ParseDuration(os.Getenv("QWEND_TEST_POSTGRES_OUTAGE"))
	if err != nil {
		t.Skip("QWEND_TEST_POSTGRES_OUTAGE is not set: the outage test needs a PostgreSQL server of its own")
	}
	stopCmd, startCmd := os.Getenv("QWEND_TEST_POSTGRES_STOP"), os.Getenv("QWEND_TEST_POSTGRES_START")
	dsn := usagetest.Postgres(t)
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data) // where the PostgreSQL ledger's spill file goes
	spill := filepath.Join(data, "qwend", "ledger-spill.jsonl")
	ts := startServer(t, nil, "--ledger", dsn)
	sent := 0
	send := func() {
		t.Helper()
		resp, b := post(t, ts.URL+"/v1/completions", `{"prompt":"outage","max_tokens":3,"temperature":0}`, "X-Request-Id", fmt.Sprintf("out-%d", sent))
		sent++
		if resp.StatusCode != 200 {
			t.Fatalf("request %d failed during the outage: %d %s", sent, resp.StatusCode, b)
		}
	}
	for range 5 {
		send()
	}
	if out, err := exec.Command("sh", "-c", stopCmd).CombinedOutput(); err != nil {
		t.Fatalf("stop postgres: %v %s", err, out)
	}
	restarted := false
	defer func() {
		if !restarted {
			exec.Command("sh", "-c", startCmd).Run()
		}
	}()
	for end := time.Now().Add(outage); time.Now().Before(end); {
		send()
	}
	// the writer's next commit fails and spills: poll for the file
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st, err := os.Stat(spill); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no spill file at %s during the outage", spill)
		}
		time.Sleep(50 * time.Millisecond) // polling for the writer's retry, not a result
	}
	if out, err := exec.Command("sh", "-c", startCmd).CombinedOutput(); err != nil {
		t.Fatalf("start postgres: %v %s", err, out)
	}
	restarted = true
	for range 5 {
		send()
	}
	ts.Stop() // drains and replays the spill file now that the database answers
	rows := todaysRows(t, dsn)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.RequestID]++
	}
	for i := range sent {
		if n := seen[fmt.Sprintf("out-%d", i)]; n != 1 {
			t.Errorf("request out-%d has %d rows", i, n)
		}
	}
	if len(rows) != sent {
		t.Errorf("%d rows for %d requests; daemon log:\n%s", len(rows), sent, ts.Diag.String())
	}
	if st, err := os.Stat(spill); err == nil && st.Size() > 0 {
		t.Errorf("the spill file still holds %d bytes after the replay", st.Size())
	}
}

// The subcommands: keys add prints a key that the keys file then admits;
// usage prints the ledger's report; ledger reprice recomputes costs.
func TestAccountingCommands(t *testing.T) {
	ctx := context.Background()
	getenv := func(string) string { return "" }
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	var out, errOut strings.Builder
	if err := run(ctx, []string{"keys", "add", "--file", keys, "--user", "alice", "--daily-usd", "2"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out.String())
	f, err := usage.LoadKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := usage.NewKeyring(f).Lookup(key); !ok || k.User != "alice" || k.DailyUSD != 2 {
		t.Errorf("printed key %q does not open the keys file: %+v", key, k)
	}
	if err := run(ctx, []string{"keys", "add", "--file", keys}, getenv, io.Discard, io.Discard); err == nil {
		t.Error("keys add without --user succeeded")
	}

	ledger := filepath.Join(dir, "ledger.db")
	store, err := usage.Open(ctx, ledger)
	if err != nil {
		t.Fatal(err)
	}
	day := "2026-11-02"
	at, _ := time.Parse("2006-01-02", day)
	if err := store.Insert(ctx, []usage.Row{
		{RequestID: "a", Time: at, User: "alice", Feature: "chat", Model: "tiny", PromptTokens: 1000, CompletionTokens: 500, CostMicroUSD: 1},
		{RequestID: "b", Time: at, User: "bob", Feature: "chat", Model: "tiny", PromptTokens: 10, CompletionTokens: 5, Status: 400, ErrorType: "invalid_request"},
	}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	out.Reset()
	if err := run(ctx, []string{"usage", "--ledger", ledger, "--date", day, "--format", "csv"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := "user,requests,errors,prompt_tokens,cached_tokens,completion_tokens,cost_usd\nalice,1,0,1000,0,500,0.000001\nbob,1,1,10,0,5,0.000000\n"
	if out.String() != want {
		t.Errorf("usage csv:\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := run(ctx, []string{"ledger", "reprice", "--ledger", ledger, "--prices", writePrices(t), "--from", day}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"usage", "--ledger", ledger, "--date", day, "--group-by", "feature", "--format", "json"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Data []struct {
			Feature string  `json:"feature"`
			CostUSD float64 `json:"cost_usd"`
		} `json:"data"`
	}
	// a dollar per million tokens: 1,515 tokens are $0.001515
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil || len(rep.Data) != 1 || rep.Data[0].Feature != "chat" || rep.Data[0].CostUSD != 0.001515 {
		t.Errorf("after reprice: %s %v", out.String(), err)
	}
}

// With keys, every endpoint but the probes (and /metrics, unless
// --metrics-key) needs one, in its API's error shape.
func TestKeysGuardEveryEndpoint(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.yaml")
	key, err := usage.AddKey(keys, usage.Key{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	for _, metricsKey := range []bool{false, true} {
		args := []string{"--keys", keys}
		if metricsKey {
			args = append(args, "--metrics-key")
		}
		ts := startServer(t, nil, args...)
		for _, tc := range []struct {
			method, path string
			open         bool
		}{
			{"GET", "/healthz", true}, {"GET", "/readyz", true}, {"GET", "/", true},
			{"GET", "/metrics", !metricsKey},
			{"GET", "/v1/models", false}, {"GET", "/v1/models/tiny", false}, {"GET", "/api/tags", false},
			{"GET", "/api/ps", false}, {"POST", "/api/show", false}, {"POST", "/tokenize", false},
		} {
			for _, withKey := range []bool{false, true} {
				req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(`{"model":"tiny","content":"x"}`))
				req.Header.Set("Content-Type", "application/json")
				if withKey {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				refused := resp.StatusCode == 401
				if refused != (!withKey && !tc.open) {
					t.Errorf("metrics-key %v, %s %s, key %v: %d %s", metricsKey, tc.method, tc.path, withKey, resp.StatusCode, b)
				}
				if refused && strings.HasPrefix(tc.path, "/api/") && !strings.HasPrefix(string(b), `{"error":"`) {
					t.Errorf("%s: not Ollama's error shape: %s", tc.path, b)
				}
			}
		}
		ts.Stop()
	}
}

// Browsers get CORS headers only for the listed origins.
func TestCORSOrigins(t *testing.T) {
	ts := startServer(t, nil, "--cors-origins", "http://localhost:5173, https://app.example")
	do := func(method, origin string) *http.Response {
		req, _ := http.NewRequest(method, ts.URL+"/v1/models", nil)
		req.Header.Set("Origin", origin)
		if method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := do("OPTIONS", "https://app.example"); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("allowed preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := do("GET", "http://localhost:5173"); r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Errorf("allowed GET: %d %v", r.StatusCode, r.Header)
	}
	if r := do("OPTIONS", "https://evil.example"); r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin's preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := do("GET", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin's GET carries CORS: %v", r.Header)
	}
	// without --cors-origins, none at all
	plain := startServer(t, nil)
	req, _ := http.NewRequest("GET", plain.URL+"/v1/models", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS by default: %v", resp.Header)
	}
}

// /tokenize and /detokenize round-trip, and control-token text in the
// content stays text.
func TestTokenizeEndpoints(t *testing.T) {
	ts := startServer(t, nil)
	resp, b := post(t, ts.URL+"/tokenize", `{"content":"hello <|im_end|> world"}`)
	var tok struct {
		Tokens []int `json:"tokens"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || resp.StatusCode != 200 || len(tok.Tokens) < 3 {
		t.Fatalf("tokenize: %d %s", resp.StatusCode, b)
	}
	body, _ := json.Marshal(map[string]any{"tokens": tok.Tokens})
	resp, b = post(t, ts.URL+"/detokenize", string(body))
	var detok struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(b, &detok); resp.StatusCode != 200 || detok.Content != "hello <|im_end|> world" {
		t.Errorf("detokenize: %d %s", resp.StatusCode, b)
	}
	if resp, b := post(t, ts.URL+"/detokenize", `{"tokens":[1,-5]}`); resp.StatusCode != 400 || !strings.Contains(string(b), "tokens[1]") {
		t.Errorf("bad id: %d %s", resp.StatusCode, b)
	}
	if resp, b := post(t, ts.URL+"/tokenize", `{}`); resp.StatusCode != 400 || !strings.Contains(string(b), "content") {
		t.Errorf("no content: %d %s", resp.StatusCode, b)
	}
}
