package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/qwend/qwend/synth"
)

// resolvedModel is the GGUF to load and the id to serve it under.
type resolvedModel struct {
	Path, Name string
	Synthetic  bool
}

// resolveModel turns --model into a file: a GGUF path as is, an Ollama name
// through the local Ollama store (read only), nothing at all into the tiny
// synthetic model (written once into the cache dir).
func resolveModel(ctx context.Context, c serveConfig, log *slog.Logger) (resolvedModel, error) {
	name := c.ModelName
	if c.Model == "" {
		dir := c.CacheDir
		if dir == "" {
			d, err := os.UserCacheDir()
			if err != nil {
				return resolvedModel{}, fmt.Errorf("--cache-dir (QWEND_CACHE_DIR): no user cache dir: %w", err)
			}
			dir = filepath.Join(d, "qwend")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return resolvedModel{}, fmt.Errorf("--cache-dir (QWEND_CACHE_DIR): %w", err)
		}
		path := filepath.Join(dir, "synthetic-tiny-f32-seed1.gguf")
		if _, err := os.Stat(path); err != nil {
			if err := synth.WriteTiny(ctx, path, 1); err != nil {
				return resolvedModel{}, err
			}
		}
		if name == "" {
			name = "qwen2-synthetic-tiny"
		}
		log.WarnContext(ctx, "NO MODEL CONFIGURED: serving a tiny synthetic Qwen2 model with random weights; its output is noise. "+
			"Point qwend at a real model with --model /path/to/qwen2.5-coder.gguf or --model qwen2.5-coder:1.5b (from the local Ollama store), "+
			"or QWEND_MODEL.", "path", path)
		return resolvedModel{Path: path, Name: name, Synthetic: true}, nil
	}
	// an existing file is a GGUF path; something shaped like a path that is
	// not there is an error; anything else is an Ollama model name
	if st, err := os.Stat(c.Model); err == nil && !st.IsDir() {
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(c.Model), filepath.Ext(c.Model))
		}
		return resolvedModel{Path: c.Model, Name: name}, nil
	} else if strings.HasSuffix(strings.ToLower(c.Model), ".gguf") || strings.ContainsRune(c.Model, os.PathSeparator) && !strings.Contains(c.Model, ":") {
		if err == nil {
			err = fmt.Errorf("%s is a directory", c.Model)
		}
		return resolvedModel{}, fmt.Errorf("--model (QWEND_MODEL): %w", err)
	}
	path, err := ollamaBlob(c.ModelsDir, c.Model)
	if err != nil {
		return resolvedModel{}, fmt.Errorf("--model (QWEND_MODEL) %q: %w", c.Model, err)
	}
	if name == "" {
		name = c.Model
	}
	return resolvedModel{Path: path, Name: name}, nil
}

// ollamaBlob finds the GGUF layer of an Ollama model name such as
// "qwen2.5-coder:1.5b", "library/qwen2.5-coder" or
// "registry.ollama.ai/library/qwen2.5-coder:latest" in the store.
func ollamaBlob(store, model string) (string, error) {
	if store == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no Ollama store: set OLLAMA_MODELS or --ollama-models")
		}
		store = filepath.Join(home, ".ollama", "models")
	}
	host, namespace, repo, tag := "registry.ollama.ai", "library", model, "latest"
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	parts := strings.Split(repo, "/")
	switch len(parts) {
	case 1:
	case 2:
		namespace, repo = parts[0], parts[1]
	case 3:
		host, namespace, repo = parts[0], parts[1], parts[2]
	default:
		return "", fmt.Errorf("not a model name (want [host/][namespace/]name[:tag])")
	}
	for _, p := range []string{host, namespace, repo, tag} {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, `\`) {
			return "", fmt.Errorf("not a model name (want [host/][namespace/]name[:tag])")
		}
	}
	manifestPath := filepath.Join(store, "manifests", host, namespace, repo, tag)
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		return "", fmt.Errorf("not in the Ollama store %s (run `ollama pull %s` first): %w", store, model, err)
	}
	var m struct {
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return "", fmt.Errorf("manifest %s: %w", manifestPath, err)
	}
	for _, l := range m.Layers {
		if l.MediaType == "application/vnd.ollama.image.model" {
			d := strings.Replace(l.Digest, ":", "-", 1)
			if strings.ContainsAny(d, `/\`) {
				return "", fmt.Errorf("manifest %s: bad digest %q", manifestPath, l.Digest)
			}
			p := filepath.Join(store, "blobs", d)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("model blob: %w", err)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("manifest %s has no model layer", manifestPath)
}
