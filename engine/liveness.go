package engine

import (
	"fmt"
	"time"
)

// Stalled reports whether the scheduler has made no progress for longer
// than d while requests hold places (running or waiting), with the reason;
// a process in that state serves nobody and should be restarted. An idle
// engine is never stalled.
func (e *Engine) Stalled(d time.Duration) (bool, string) {
	if e.admitted.Load() == 0 {
		return false, ""
	}
	last := e.stepped.Load()
	if since := time.Since(time.Unix(0, last)); since > d {
		return true, fmt.Sprintf("the scheduler has not finished a step for %s with %d requests waiting or running",
			since.Round(time.Second), e.admitted.Load())
	}
	return false, ""
}
