package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qwend/qwend/quality"
	"github.com/qwend/qwend/synth"
)

// validate runs qwend validate in process and returns its output and exit
// status.
func validate(t *testing.T, args ...string) (stdout string, status int, err error) {
	t.Helper()
	var out, diag bytes.Buffer
	err = run(context.Background(), append([]string{"validate", "--threads", "1"}, args...), func(string) string { return "" }, &out, &diag)
	if err != nil {
		return out.String(), exitStatus(err), err
	}
	return out.String(), 0, nil
}

// qwend validate end to end: a baseline written, matched, then a tampered
// answer (status 1, the first diverging token named, in the table and in
// JSON), another setting (1, named), another model or no baseline (2,
// said plainly).
func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	prompts := filepath.Join(dir, "prompts.yaml")
	if err := os.WriteFile(prompts, []byte("max_tokens: 10\nprompts:\n"+
		"  - {name: go, messages: [{role: user, content: Write fizzbuzz in Go.}]}\n"+
		"  - {name: fim, prefix: 'def f(x):', suffix: '    return y'}\n"+
		"  - {name: c, prompt: 'int main(void) {'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	baseline := filepath.Join(dir, "baseline.json")
	common := []string{"--model", modelPath, "--prompts", prompts, "--baseline", baseline, "--ctx-size", "512"}

	if out, status, err := validate(t, append(common, "--update")...); status != 0 {
		t.Fatalf("--update: %d %v\n%s", status, err, out)
	}
	base, err := quality.ReadBaseline(baseline)
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Results) != 3 || base.Model.Fingerprint == "" || base.LlamaBuild == "" || base.Settings.Slots != 1 || base.Settings.ContextPerSlot != 512 {
		t.Fatalf("baseline %+v", base)
	}
	if out, status, err := validate(t, common...); status != 0 || !strings.Contains(out, "validate: 3 match, 0 differ") {
		t.Fatalf("against its own baseline: %d %v\n%s", status, err, out)
	}

	// the baseline's answer to "go" changed at token 2
	var target *quality.Result
	for i := range base.Results {
		if len(base.Results[i].TokenIDs) > 2 {
			target = &base.Results[i]
			break
		}
	}
	if target == nil {
		t.Fatalf("no answer of 3 tokens: %+v", base.Results)
	}
	target.TokenIDs[2] = 1
	if err := base.WriteFile(baseline); err != nil {
		t.Fatal(err)
	}
	out, status, _ := validate(t, common...)
	if status != 1 || !strings.Contains(out, "first diverging token 2: expected token 1, got token") {
		t.Errorf("a changed answer: status %d\n%s", status, out)
	}
	out, status, _ = validate(t, append(common, "--format", "json")...)
	var rep quality.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || status != 1 || rep.Differed != 1 {
		t.Fatalf("JSON report: %d %v\n%s", status, err, out)
	}
	for _, p := range rep.Prompts {
		if p.Name == target.Name && p.FirstDivergingToken != 2 {
			t.Errorf("first_diverging_token %d, want 2", p.FirstDivergingToken)
		}
	}
	if !strings.Contains(out, `"first_diverging_token": 2`) {
		t.Error("the JSON report lacks first_diverging_token")
	}

	// another setting is named, and fails the run
	if _, status, err := validate(t, append(common, "--update")...); status != 0 {
		t.Fatal(err)
	}
	out, status, _ = validate(t, append(common, "--batch-size", "3")...)
	if status != 1 || !strings.Contains(out, "setting differs from the baseline's: batch_size: 512 -> 3") {
		t.Errorf("another batch size: status %d\n%s", status, out)
	}

	// another model: nothing to compare, said plainly
	other := filepath.Join(dir, "other.gguf")
	if err := synth.WriteTiny(context.Background(), other, 2); err != nil {
		t.Fatal(err)
	}
	_, status, err = validate(t, "--model", other, "--prompts", prompts, "--baseline", baseline, "--ctx-size", "512")
	if status != 2 || err == nil || !strings.Contains(err.Error(), "the model is not the baseline's") {
		t.Errorf("another model: status %d, %v", status, err)
	}
	_, status, err = validate(t, "--model", modelPath, "--baseline", filepath.Join(dir, "none.json"))
	if status != 2 || err == nil || !strings.Contains(err.Error(), "--update to write one") {
		t.Errorf("no baseline: status %d, %v", status, err)
	}
}

// The baseline kept in the repository (make validate) matches the default
// model's answers to the shipped prompts, where the model and the machine
// are the baseline's: with Qwen2.5's tokenizer installed, on a CPU with
// the same features (the fingerprint); elsewhere the test says why it
// cannot tell.
func TestShippedBaseline(t *testing.T) {
	if synth.FindTokenizer() == "" {
		t.Skip("the shipped baseline is of the default model with Qwen2.5's vocabulary: run scripts/deps.sh")
	}
	out, status, err := validate(t, "--baseline", "../../quality/baselines/default.json", "--cache-dir", t.TempDir(), "--format", "json")
	if status == 2 {
		t.Fatalf("%v (regenerate it: make validate-update)", err)
	}
	var rep quality.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.OK() {
		return
	}
	for _, n := range rep.Notes {
		if strings.HasPrefix(n, "fingerprint ") {
			t.Skipf("%d of %d answers differ on another machine or build (%s): not a regression by itself", rep.Differed, len(rep.Prompts), n)
		}
	}
	t.Errorf("the default model's answers differ from quality/baselines/default.json (make validate shows where; make validate-update rewrites it after an intended change):\n%s", out)
}

// --url runs the prompts through a serving daemon's OpenAI API and
// compares the texts with the baseline's (the API gives no token ids).
func TestValidateThroughAPI(t *testing.T) {
	dir := t.TempDir()
	prompts := filepath.Join(dir, "prompts.yaml")
	if err := os.WriteFile(prompts, []byte("max_tokens: 6\nprompts:\n"+
		"  - {name: go, messages: [{role: user, content: Write fizzbuzz in Go.}]}\n"+
		"  - {name: fim, prefix: 'def f(x):', suffix: '    return y'}\n"+
		"  - {name: c, prompt: 'int main(void) {'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	baseline := filepath.Join(dir, "baseline.json")
	if _, status, err := validate(t, "--model", modelPath, "--prompts", prompts, "--baseline", baseline, "--ctx-size", "512", "--update"); status != 0 {
		t.Fatal(err)
	}
	ts := startServer(t, nil, "--parallel", "1")
	out, status, err := validate(t, "--url", ts.URL, "--prompts", prompts, "--baseline", baseline, "--format", "json")
	var rep quality.Report
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil || status == 2 || len(rep.Prompts) != 3 {
		t.Fatalf("status %d, %v, %v\n%s", status, err, jerr, out)
	}
	for _, p := range rep.Prompts {
		if !p.Match && p.DivergingAt == nil {
			t.Errorf("%s: a difference through the API without its byte offset: %+v", p.Name, p)
		}
	}
	if _, status, err := validate(t, "--url", ts.URL, "--prompts", prompts, "--baseline", baseline, "--update"); status != 2 || !strings.Contains(err.Error(), "drop --url") {
		t.Errorf("--update with --url: %d %v", status, err)
	}
	t.Logf("through the API: %d match, %d differ", rep.Matched, rep.Differed)
}
