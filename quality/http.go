package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// RunHTTP answers every prompt of set through a serving qwend's OpenAI
// API at baseURL (http://host:port): chats through /v1/chat/completions,
// fill-in-the-middle and completions through /v1/completions, greedily
// with seed. The API gives no token ids, so the results carry none
// (Compare then compares the texts), and Model holds only the daemon's
// system_fingerprint. The daemon decodes the prompts in batches shared
// with other requests, after cached prefixes: see the package comment.
func RunHTTP(ctx context.Context, client *http.Client, baseURL string, set *PromptSet, seed uint64) ([]Result, Model, error) {
	baseURL = strings.TrimRight(baseURL, "/")
	var model Model
	var out []Result
	for _, p := range set.Prompts {
		body := map[string]any{"max_tokens": p.MaxTokens, "temperature": 0, "seed": seed}
		path := "/v1/completions"
		switch p.Kind() {
		case "chat":
			path, body["messages"] = "/v1/chat/completions", p.Messages
		case "fim":
			body["prompt"], body["suffix"] = p.Prefix, p.Suffix
		default:
			body["prompt"] = p.Prompt
		}
		var resp struct {
			Fingerprint string `json:"system_fingerprint"`
			Choices     []struct {
				Text    string `json:"text"`
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := postJSON(ctx, client, baseURL+path, body, &resp); err != nil {
			return nil, model, fmt.Errorf("prompt %s: %w", p.Name, err)
		}
		if len(resp.Choices) != 1 {
			return nil, model, fmt.Errorf("prompt %s: %d choices", p.Name, len(resp.Choices))
		}
		model.Fingerprint = resp.Fingerprint
		text := resp.Choices[0].Text + resp.Choices[0].Message.Content
		out = append(out, Result{
			Name: p.Name, Kind: p.Kind(), PromptTokens: resp.Usage.PromptTokens,
			Output: text, OutputSHA256: sha256Hex([]byte(text)), FinishReason: resp.Choices[0].FinishReason,
		})
	}
	return out, model, nil
}

func postJSON(ctx context.Context, client *http.Client, url string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}
