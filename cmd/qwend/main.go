// Command qwend serves Qwen models through llama.cpp with OpenTelemetry on
// every request.
//
//	qwend serve [flags]      serve a model over HTTP (OpenAI and Ollama APIs)
//	qwend synth [flags]      write a synthetic Qwen2 GGUF with random weights
//	qwend validate [flags]   compare greedy answers with a stored baseline
//	qwend drift snapshot     pin a drift baseline from the daemon's history
//	qwend keys add [flags]   add an API key
//	qwend usage [flags]      print daily usage from the ledger
//	qwend ledger reprice     recompute costs after a price change
//	qwend version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/qwend/qwend/quality"
	"github.com/qwend/qwend/synth"
	"github.com/qwend/qwend/usage"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// the first signal drains; a second one exits at once (the service
		// log is written unbuffered, so no line is lost)
		<-ctx.Done()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		fmt.Fprintln(os.Stderr, "qwend: second signal: exiting without draining")
		os.Exit(1)
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "qwend:", err)
		os.Exit(exitStatus(err))
	}
}

const usageText = `usage: qwend <command> [flags]

commands:
  serve    serve a Qwen model over HTTP (default)
  synth    write a synthetic Qwen2 GGUF with random weights
  validate compare greedy answers to a prompt set with a stored baseline
  drift    pin a drift baseline from the daemon's history (drift snapshot)
  keys     add an API key (keys add --file FILE --user NAME)
  usage    print daily usage from the ledger
  ledger   recompute costs after a price change (ledger reprice)
  version  print the version

Run 'qwend <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, usageText)
			return nil
		case "-version", "--version":
			args[0] = "version"
		}
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseServeConfig(args, getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr)
	case "synth":
		return synth.Command(ctx, args, stderr)
	case "validate":
		return quality.ValidateCommand(ctx, args, stdout, stderr, version)
	case "drift":
		return quality.DriftCommand(args, stdout, stderr)
	case "keys":
		return usage.KeysCommand(args, stdout, stderr)
	case "usage":
		return usage.UsageCommand(ctx, args, stdout, stderr)
	case "ledger":
		return usage.LedgerCommand(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "qwend", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprint(stderr, usageText)
	return fmt.Errorf("unknown command %q", cmd)
}

// exit status of an error: its ExitCode when it has one, else 1.
func exitStatus(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
