// Package quality checks that a model's answers stay what they were: a
// deterministic validation harness that compares greedy outputs of a
// fixed prompt set with a stored baseline, and a drift monitor that
// compares recent requests with a baseline window.
package quality
