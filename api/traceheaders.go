package api

import "net/http"

// MaxTraceHeaderBytes bounds the W3C trace headers taken from a client;
// longer ones are dropped before the propagator sees them (baggage is
// limited to 8192 bytes by the W3C spec, and an oversized one would be
// reported as a telemetry error).
const MaxTraceHeaderBytes = 8192

// DropOversizedTraceHeaders removes Baggage, Traceparent and Tracestate
// headers over MaxTraceHeaderBytes before next (and the propagator in it)
// sees the request.
func DropOversizedTraceHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Baggage", "Traceparent", "Tracestate"} {
			n := 0
			for _, v := range r.Header.Values(h) {
				n += len(v)
			}
			if n > MaxTraceHeaderBytes {
				r.Header.Del(h)
			}
		}
		next.ServeHTTP(w, r)
	})
}
