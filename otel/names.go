package otel

import "go.opentelemetry.io/otel/attribute"

// Metric names, units and histogram boundaries, in one place. They follow
// the OpenTelemetry GenAI semantic conventions (gen_ai.*) and the hardware
// conventions (hw.*); what those conventions do not cover is under qwend.*.
// Attribute values come only from closed sets: loaded model names, the
// engine's error types, success or error, token types.

const (
	MetricRequestDuration    = "gen_ai.server.request.duration"      // s
	MetricTimeToFirstToken   = "gen_ai.server.time_to_first_token"   // s
	MetricTimePerOutputToken = "gen_ai.server.time_per_output_token" // s
	MetricTokenUsage         = "gen_ai.client.token.usage"           // {token}, per request and type
	MetricTokens             = "qwend.tokens"                        // {token} counter by gen_ai.token.type
	MetricRequests           = "qwend.requests"                      // {request} counter by status, error.type
	MetricQueueWait          = "qwend.queue.wait"                    // s
	MetricRequestsRunning    = "qwend.requests.running"              // {request}
	MetricRequestsWaiting    = "qwend.requests.waiting"              // {request}
	MetricBatchSize          = "qwend.batch.size"                    // {sequence} per scheduler step
	MetricStepDuration       = "qwend.step.duration"                 // s per step phase: decode, sample, send
	MetricKVCacheUsage       = "qwend.kv_cache.usage"                // 1: tokens held / capacity
	MetricPreemptions        = "qwend.kv_cache.preemptions"          // {request} counter: preempted for KV cells (--kv-unified)
	MetricPrefixCacheHit     = "qwend.prefix_cache.hit_ratio"        // 1: cached / prompt tokens since start
	MetricExportErrors       = "qwend.telemetry.export.errors"       // {error}
	MetricCost               = "qwend.cost"                          // {USD} counter by model: what requests cost under the prices
	MetricBudgetRefusals     = "qwend.budget.refusals"               // {request} refused with budget_exceeded
	MetricFeedback           = "qwend.feedback"                      // {feedback} by qwend.feedback.label: up, down
	MetricLedgerQueue        = "qwend.ledger.queue"                  // {row} waiting for their commit
	MetricLedgerRows         = "qwend.ledger.rows"                   // {row} committed since start
	MetricLedgerErrors       = "qwend.ledger.errors"                 // {error} failed ledger transactions since start
	MetricLedgerSpilled      = "qwend.ledger.spilled"                // {row} written to the spill file since start
	MetricLedgerDropped      = "qwend.ledger.dropped"                // {row} lost since start: neither committed nor spilled

	MetricGPUUtilization = "hw.gpu.utilization"  // 1 (0 to 1)
	MetricGPUMemoryUsage = "hw.gpu.memory.usage" // By
	MetricGPUMemoryLimit = "hw.gpu.memory.limit" // By
	MetricGPUMemoryFree  = "hw.gpu.memory.free"  // By
	MetricGPUTemperature = "hw.gpu.temperature"  // Cel
	MetricGPUPower       = "hw.gpu.power"        // W
	MetricGPUSMClock     = "hw.gpu.clock.sm"     // MHz
)

const (
	AttrOperation     = "gen_ai.operation.name"
	AttrProvider      = "gen_ai.provider.name"
	AttrRequestModel  = "gen_ai.request.model"
	AttrResponseModel = "gen_ai.response.model"
	AttrTokenType     = "gen_ai.token.type"
	AttrErrorType     = "error.type"
	AttrStatus        = "qwend.status"
	AttrStepPhase     = "qwend.step.phase"
	AttrFeedbackLabel = "qwend.feedback.label"
	AttrHWID          = "hw.id"
	AttrHWName        = "hw.name"
	AttrGPUIndex      = "hw.gpu.index"
	AttrNVMLMissing   = "nvml_unavailable"

	ProviderName = "qwend"
)

// Bucket boundaries: the GenAI conventions' advice for the gen_ai.* histograms.
var (
	BucketsRequestDuration    = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	BucketsTimeToFirstToken   = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	BucketsTimePerOutputToken = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	BucketsTokenUsage         = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	BucketsQueueWait          = []float64{0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	BucketsBatchSize          = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}
	BucketsStepDuration       = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}
)

// HTTPMetricAttributes are the only attribute keys kept on the metrics of
// the otelhttp instrumentation (http.server.request.duration,
// http.server.request.body.size, http.server.response.body.size); Setup's
// meter provider drops every other, from the data points and from their
// exemplars. Each has a closed set of values whatever clients send:
// otelhttp reports a method it does not know as "_OTHER", the route is the
// handler's pattern, and status codes, schemes and protocols are few. What
// otelhttp takes from the request itself, such as server.address and
// server.port from the Host header, is dropped: one series per distinct
// value would let any client grow the metrics without bound.
var HTTPMetricAttributes = []attribute.Key{
	"http.request.method",
	"http.response.status_code",
	"http.route",
	"url.scheme",
	"network.protocol.name",
	"network.protocol.version",
	"error.type",
}
