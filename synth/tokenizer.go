package synth

import (
	_ "embed"
	"regexp"
	"sort"
)

// Special tokens of Qwen2.5-Coder, in the order of their real ids.
var SpecialTokens = []string{
	"<|endoftext|>", "<|im_start|>", "<|im_end|>",
	"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
	"<|repo_name|>", "<|file_sep|>",
}

// ChatTemplate is a plain ChatML chat template (no tools, no default
// system message), for Options.ChatTemplate.
const ChatTemplate = `{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}`

//go:embed corpus.txt
var corpus string

// maxMerges bounds the BPE merges learned from the corpus.
const maxMerges = 600

const (
	tokenTypeNormal  int32 = 1
	tokenTypeControl int32 = 3
)

// byteSymbols is GPT-2's byte-to-unicode map: the printable symbol each byte
// is written as in a byte-level BPE vocabulary.
func byteSymbols() [256]string {
	var out [256]string
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out
}

var pretokenize = regexp.MustCompile(`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+`)

// vocabulary is a byte-level BPE vocabulary learned from the embedded corpus.
type vocabulary struct {
	tokens []string
	types  []int32
	merges []string
	eos    int32
}

// buildVocabulary returns size tokens: 256 byte symbols, learned merges,
// Qwen's special tokens, then unused padding.
func buildVocabulary(size int) vocabulary {
	sym := byteSymbols()
	var v vocabulary
	for b := range 256 {
		v.tokens = append(v.tokens, sym[b])
	}

	// words as sequences of byte symbols, with their counts
	counts := map[string]int{}
	for _, w := range pretokenize.FindAllString(corpus, -1) {
		counts[w]++
	}
	type word struct {
		parts []string
		n     int
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]word, 0, len(keys))
	for _, k := range keys {
		parts := make([]string, 0, len(k))
		for _, b := range []byte(k) {
			parts = append(parts, sym[b])
		}
		words = append(words, word{parts, counts[k]})
	}

	budget := min(maxMerges, size-256-len(SpecialTokens))
	for len(v.merges) < budget {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.parts); i++ {
				pairs[[2]string{w.parts[i], w.parts[i+1]}] += w.n
			}
		}
		var best [2]string
		bestN := 1
		for p, n := range pairs {
			if n > bestN || (n == bestN && n > 1 && (p[0]+" "+p[1]) < (best[0]+" "+best[1])) {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		merged := best[0] + best[1]
		v.merges = append(v.merges, best[0]+" "+best[1])
		v.tokens = append(v.tokens, merged)
		for wi := range words {
			p := words[wi].parts
			out := p[:0]
			for i := 0; i < len(p); i++ {
				if i+1 < len(p) && p[i] == best[0] && p[i+1] == best[1] {
					out = append(out, merged)
					i++
					continue
				}
				out = append(out, p[i])
			}
			words[wi].parts = out
		}
	}
	for range v.tokens {
		v.types = append(v.types, tokenTypeNormal)
	}
	v.eos = int32(len(v.tokens))
	for _, s := range SpecialTokens {
		v.tokens = append(v.tokens, s)
		v.types = append(v.types, tokenTypeControl)
	}
	// the rest of the vocabulary: distinct made-up words, so that what a
	// random model samples from it still reads as text
	seen := map[string]bool{}
	for _, t := range v.tokens {
		seen[t] = true
	}
	for i := 0; len(v.tokens) < size; i++ {
		w := sym[' '] + syllables(i)
		if seen[w] {
			continue
		}
		seen[w] = true
		v.tokens = append(v.tokens, w)
		v.types = append(v.types, tokenTypeNormal)
	}
	return v
}

// syllables spells i in a base of consonant-vowel pairs: 0 "ba", 1 "be", ...
func syllables(i int) string {
	const consonants, vowels = "bdfgklmnprstvz", "aeiou"
	n := len(consonants) * len(vowels)
	var b []byte
	for {
		k := i % n
		b = append(b, consonants[k/len(vowels)], vowels[k%len(vowels)])
		i = i/n - 1
		if i < 0 {
			return string(b)
		}
	}
}
