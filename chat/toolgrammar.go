package chat

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/qwend/qwend/engine"
)

// Function is a callable function as a tool definition describes it.
type Function struct {
	Name string
	// Parameters is the JSON schema of the arguments object; nil: any
	// object.
	Parameters json.RawMessage
}

// maxParallelCalls bounds the calls one forced answer may hold.
const maxParallelCalls = 8

var rootRule = regexp.MustCompile(`(?m)^root ::=`)

// ToolCallGrammar is the grammar of an answer that is only tool calls, in
// the Qwen2.5 markup (<tool_call>\n{"name": ..., "arguments": {...}}\n
// </tool_call>), each a call of one of fns with arguments that match its
// parameters schema: one call, or with parallel up to 8. Errors: an
// *engine.SchemaError from a function's parameters (the error names the
// function), or the converter's failure.
func ToolCallGrammar(fns []Function, parallel bool) (string, error) {
	if len(fns) == 0 {
		return "", fmt.Errorf("no functions to call")
	}
	alts := make([]string, len(fns))
	for i, f := range fns {
		params := strings.TrimSpace(string(f.Parameters))
		if params == "" || params == "null" {
			params = `{"type": "object"}`
		}
		// the function's own schema first, so that an error names it
		if _, err := engine.SchemaGrammar([]byte(params)); err != nil {
			return "", fmt.Errorf("function %q parameters: %w", f.Name, err)
		}
		name, _ := json.Marshal(f.Name)
		alts[i] = fmt.Sprintf(`{"type": "object", "properties": {"name": {"const": %s}, "arguments": %s}, "required": ["name", "arguments"], "additionalProperties": false}`, name, params)
	}
	schema := alts[0]
	if len(alts) > 1 {
		schema = `{"anyOf": [` + strings.Join(alts, ", ") + `]}`
	}
	g, err := engine.SchemaGrammar([]byte(schema))
	if err != nil {
		return "", err
	}
	g = rootRule.ReplaceAllString(g, "tool-call-json ::=")
	call := `"<tool_call>\n" tool-call-json "\n</tool_call>"`
	root := "root ::= " + call
	if parallel {
		root += fmt.Sprintf(` ( "\n" %s ){0,%d}`, call, maxParallelCalls-1)
	}
	return root + "\n" + g, nil
}
