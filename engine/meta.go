package engine

import (
	"fmt"
	"os"

	"github.com/ollama/ollama/fs/ggml"
)

// readChatTemplate returns the GGUF's tokenizer.chat_template (the model's
// Jinja chat template), "" when the file has none. Only the header is read;
// arrays such as the vocabulary are skipped.
func readChatTemplate(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	g, err := ggml.Decode(f, 0)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	return g.KV().ChatTemplate(), nil
}
