package quality

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteReportTable prints rep for a person: the model, settings that
// differ, a line per prompt, and each difference's expected and got text.
func WriteReportTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "model %s (sha256 %.16s..., %s)\n", rep.Model.Path, rep.Model.SHA256, rep.Model.Fingerprint)
	for _, s := range rep.SettingsDiffer {
		fmt.Fprintf(w, "setting differs from the baseline's: %s\n", s)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROMPT\tRESULT\tTOKENS\tDETAIL")
	for _, p := range rep.Prompts {
		result, detail := "match", ""
		switch {
		case p.Match:
		case p.Missing:
			result, detail = "new", "not in the baseline"
		case p.Extra:
			result, detail = "missing", "in the baseline, not in the prompt set"
		default:
			result = "DIFFERS"
			var parts []string
			if p.PromptDiffers {
				parts = append(parts, "the prompt's tokens differ (tokenizer or chat template)")
			}
			switch {
			case p.DivergingAt != nil:
				parts = append(parts, fmt.Sprintf("first diverging byte %d", *p.DivergingAt))
			case p.FirstDivergingToken >= 0:
				parts = append(parts, fmt.Sprintf("first diverging token %d: expected %s, got %s",
					p.FirstDivergingToken, tokenOrEnd(p.ExpectedTokenID), tokenOrEnd(p.GotTokenID)))
			}
			detail = strings.Join(parts, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", p.Name, result, p.GotTokens, p.ExpectedTokens, detail)
	}
	tw.Flush()
	for _, p := range rep.Prompts {
		if !p.Match && !p.Missing && !p.Extra && (p.Expected != "" || p.Got != "") {
			fmt.Fprintf(w, "\n%s:\n  expected: %q\n  got:      %q\n", p.Name, p.Expected, p.Got)
		}
	}
	fmt.Fprintf(w, "\nvalidate: %d match, %d differ\n", rep.Matched, rep.Differed)
}

func tokenOrEnd(id *int) string {
	if id == nil {
		return "the end"
	}
	return fmt.Sprintf("token %d", *id)
}
