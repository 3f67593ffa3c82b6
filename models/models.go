// Package models turns the --model setting into a GGUF file to load: a
// path as is, an Ollama model name through the local Ollama store (read
// only), or nothing at all into the tiny synthetic default model.
package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/qwend/qwend/synth"
)

// Resolved is the GGUF to load and the id to serve it under.
type Resolved struct {
	Path, Name string
	Synthetic  bool // the default model: random weights, its output is noise
}

// Options are the settings Resolve reads.
type Options struct {
	Model       string // GGUF path or Ollama name; "" for the default synthetic model
	Name        string // the id served to clients; "" derives one
	CacheDir    string // where the default model is written; "" is the user cache dir + /qwend
	OllamaStore string // the Ollama model store; "" is ~/.ollama/models
}

// ErrModel wraps what is wrong with Options.Model; ErrCacheDir with
// Options.CacheDir, so the caller can name its flag.
var (
	ErrModel    = errors.New("model")
	ErrCacheDir = errors.New("cache dir")
)

// DefaultName is the served id of the default synthetic model.
const DefaultName = "qwen2-synthetic-tiny"

// Resolve finds the model file, writing the default synthetic model into
// the cache dir the first time it is needed. Errors wrap ErrModel or
// ErrCacheDir.
func Resolve(ctx context.Context, o Options, log *slog.Logger) (Resolved, error) {
	name := o.Name
	if o.Model == "" {
		dir := o.CacheDir
		if dir == "" {
			d, err := os.UserCacheDir()
			if err != nil {
				return Resolved{}, fmt.Errorf("%w: no user cache dir: %v", ErrCacheDir, err)
			}
			dir = filepath.Join(d, "qwend")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Resolved{}, fmt.Errorf("%w: %v", ErrCacheDir, err)
		}
		path, vocabulary, err := writeDefault(ctx, dir)
		if err != nil {
			return Resolved{}, err
		}
		if name == "" {
			name = DefaultName
		}
		log.WarnContext(ctx, "NO MODEL CONFIGURED: serving a tiny synthetic Qwen2 model with random weights; its output is noise. "+
			"Point qwend at a real model with --model /path/to/qwen2.5-coder.gguf or --model qwen2.5-coder:1.5b (from the local Ollama store), "+
			"or QWEND_MODEL.", "path", path, "vocabulary", vocabulary)
		return Resolved{Path: path, Name: name, Synthetic: true}, nil
	}
	// an existing file is a GGUF path; something shaped like a path that is
	// not there is an error; anything else is an Ollama model name
	if st, err := os.Stat(o.Model); err == nil && !st.IsDir() {
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(o.Model), filepath.Ext(o.Model))
		}
		return Resolved{Path: o.Model, Name: name}, nil
	} else if strings.HasSuffix(strings.ToLower(o.Model), ".gguf") || strings.ContainsRune(o.Model, os.PathSeparator) && !strings.Contains(o.Model, ":") {
		if err == nil {
			err = fmt.Errorf("%s is a directory", o.Model)
		}
		return Resolved{}, fmt.Errorf("%w: %v", ErrModel, err)
	}
	path, err := OllamaBlob(o.OllamaStore, o.Model)
	if err != nil {
		return Resolved{}, fmt.Errorf("%w %q: %v", ErrModel, o.Model, err)
	}
	if name == "" {
		name = o.Model
	}
	return Resolved{Path: path, Name: name}, nil
}

// writeDefault writes the default synthetic model into dir unless it is
// there: with Qwen2.5's vocabulary and Qwen2.5-Coder-Instruct's chat
// template when synth.FindTokenizer finds Qwen2.5's tokenizer.json (the
// file name carries a hash of it), else with the small learned vocabulary
// and no template. It returns the path and which vocabulary it has.
func writeDefault(ctx context.Context, dir string) (path, vocabulary string, err error) {
	tp := synth.FindTokenizer()
	if tp == "" {
		path = filepath.Join(dir, "synthetic-tiny-f32-seed1.gguf")
		if _, err := os.Stat(path); err != nil {
			if err := synth.WriteTiny(ctx, path, 1); err != nil {
				return "", "", err
			}
		}
		return path, "small (learned from an embedded corpus; no chat template)", nil
	}
	data, err := os.ReadFile(tp)
	if err != nil {
		return "", "", fmt.Errorf("tokenizer: %w", err)
	}
	sum := sha256.Sum256(data)
	path = filepath.Join(dir, "synthetic-tiny-qwen2.5-vocab-"+hex.EncodeToString(sum[:4])+"-f32-seed1.gguf")
	vocabulary = "Qwen2.5 (" + tp + ")"
	if _, err := os.Stat(path); err == nil {
		return path, vocabulary, nil
	}
	tok, err := synth.LoadTokenizer(tp)
	if err != nil {
		return "", "", err
	}
	if err := synth.WriteTinyQwen(ctx, path, 1, tok); err != nil {
		return "", "", err
	}
	return path, vocabulary, nil
}

// digestPattern is a blob digest as Ollama writes it in a manifest.
var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]+$`)

// OllamaBlob finds the GGUF layer of an Ollama model name such as
// "qwen2.5-coder:1.5b", "library/qwen2.5-coder" or
// "registry.ollama.ai/library/qwen2.5-coder:latest" in the store (""
// means ~/.ollama/models). Name parts and digests are checked so that
// neither can leave the store.
func OllamaBlob(store, model string) (string, error) {
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
			if !digestPattern.MatchString(l.Digest) {
				return "", fmt.Errorf("manifest %s: bad digest %q (want sha256:<hex>)", manifestPath, l.Digest)
			}
			p := filepath.Join(store, "blobs", strings.Replace(l.Digest, ":", "-", 1))
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("model blob: %w", err)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("manifest %s has no model layer", manifestPath)
}
