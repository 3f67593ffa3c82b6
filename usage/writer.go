package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// WriterOptions configures a Writer; zero fields take their defaults.
type WriterOptions struct {
	// SpillPath is the JSONL file (one Row per line) for rows the store could
	// not take; "" disables spilling: rows then stay queued in memory, at
	// most MaxQueue of them, and rows beyond that are dropped (counted in
	// WriterStats.Dropped). The writer also uses SpillPath+".replay" while
	// replaying. One Writer per file.
	SpillPath string
	// MaxBatch is the most rows committed in one transaction (default 256,
	// at most MaxQueue).
	MaxBatch int
	// MaxQueue bounds the rows held in memory: the capacity of Add's channel
	// and, while the store is down without a spill file, of the rows waiting
	// for it (default 8192).
	MaxQueue int
	// FlushInterval is the longest a row waits before its commit is tried
	// (default 1 s).
	FlushInterval time.Duration
	// RetryInterval is how often the writer retries the store and replays
	// the spill file while the store is down (default 5 s).
	RetryInterval time.Duration
	// CommitTimeout bounds one transaction (default 30 s); a transaction
	// that runs out counts as a store failure.
	CommitTimeout time.Duration
	// Logger receives outages, recoveries and lost rows (default
	// slog.Default()).
	Logger *slog.Logger
}

// WriterStats are a Writer's counters since NewWriter, in rows unless said
// otherwise.
type WriterStats struct {
	Queue    int64 // rows in memory, neither committed nor spilled yet
	Rows     int64 // rows committed from the queue (including ones the store already had)
	Errors   int64 // failed transactions (Insert calls), replays included
	Spilled  int64 // rows written (and fsynced) to the spill file
	Replayed int64 // rows committed from the spill file
	Dropped  int64 // rows lost: invalid, or no room in memory and no spill file, or the spill write failed
}

// ErrWriterClosed is returned by Flush after Close.
var ErrWriterClosed = errors.New("usage: writer closed")

// errStoreDown is Flush's answer while the store is down and the rows wait
// in memory or in the spill file.
var errStoreDown = errors.New("usage: ledger store unavailable")

// Writer batches rows into a Store off the request path. One goroutine owns
// the batching: a row leaves memory only after its transaction committed or
// after it was written and fsynced to the spill file. When a commit fails,
// the batch goes to the spill file (or stays in memory without one) and the
// writer retries every RetryInterval; once the store answers it replays the
// spill file and removes it. Insert skips rows it already has, so a replay
// interrupted by a crash cannot count a row twice. A spill file left by an
// earlier process is replayed when the Writer starts.
//
// Add, Flush, Stats and Close are safe for concurrent use.
type Writer struct {
	store Store
	opt   WriterOptions
	log   *slog.Logger

	in      chan Row
	flushes chan chan error
	done    chan struct{}

	mu        sync.RWMutex // held for writing only to close in
	closed    bool
	closeOnce sync.Once
	closeCtx  context.Context // Close's context; set before in is closed
	closeErr  error           // set by run before done is closed

	spillMu    sync.Mutex  // serialises appends to SpillPath and its rename
	spillDirty atomic.Bool // Add spilled a row the owner has not replayed yet

	queue, rows, errs, spilled, replayed, dropped atomic.Int64
	dropLogged                                    atomic.Int64 // Unix ns of the last "rows lost" log line

	// Owned by run.
	pending   []Row
	down      bool
	replayOff int64 // bytes of SpillPath+".replay" already committed
	badOff    int64 // end of the last unreadable line of it already counted as dropped
}

// NewWriter starts a Writer on s and returns at once. Its goroutine first
// replays a spill file left at o.SpillPath (and SpillPath+".replay"), before
// it commits anything else; a Flush returns only after that. Stop the Writer
// with Close.
func NewWriter(s Store, o WriterOptions) *Writer {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 8192
	}
	o.MaxBatch = min(o.MaxBatch, o.MaxQueue)
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 5 * time.Second
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	w := &Writer{
		store:   s,
		opt:     o,
		log:     o.Logger,
		in:      make(chan Row, o.MaxQueue),
		flushes: make(chan chan error),
		done:    make(chan struct{}),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	go w.run()
	return w
}

// Add queues r for the ledger without waiting for the database. A zero
// r.Time becomes the time of the call; r is normalised as Insert would (see
// Store). When the queue is full (MaxQueue rows) or the Writer is closed,
// Add writes r to the spill file synchronously (an append and an fsync, no
// database) or, without a spill file, drops it and counts it in Dropped. A
// row Insert would refuse (no RequestID, say) is logged and dropped.
func (w *Writer) Add(r Row) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r, err := normalizeRow(r)
	if err != nil {
		w.drop(1, "invalid row", err)
		return
	}
	w.mu.RLock()
	if !w.closed {
		w.queue.Add(1)
		select {
		case w.in <- r:
			w.mu.RUnlock()
			return
		default:
			w.queue.Add(-1)
		}
	}
	w.mu.RUnlock()
	if w.opt.SpillPath == "" {
		w.drop(1, "queue full or writer closed, no spill file", nil)
		return
	}
	if err := w.spill([]Row{r}); err != nil {
		w.drop(1, "spill file write failed", err)
		return
	}
	w.spillDirty.Store(true)
}

// Flush commits every row added before the call and, when the store is
// down or the spill file holds rows, retries the store and replays the file
// at once. It returns nil when all of them are in the store; else the
// store's error (the rows are then in the spill file or still queued),
// ctx.Err(), or ErrWriterClosed after Close.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.RLock()
	closed := w.closed
	w.mu.RUnlock()
	if closed {
		return ErrWriterClosed
	}
	reply := make(chan error, 1)
	select {
	case w.flushes <- reply:
	case <-w.done:
		return ErrWriterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting rows and drains: every queued row is committed, or
// spilled when its commit fails (and, when the store is up, the spill file
// is replayed once more). It returns when the drain is over, with an error
// counting the rows that could be neither committed nor spilled; or with
// ctx.Err() when ctx ends first, in which case the drain's database calls
// are cancelled too and what remains is spilled in the background. Close is
// safe to call twice; later calls wait for the same drain.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.closeCtx = ctx
		close(w.in)
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		return w.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the Writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Queue:    w.queue.Load(),
		Rows:     w.rows.Load(),
		Errors:   w.errs.Load(),
		Spilled:  w.spilled.Load(),
		Replayed: w.replayed.Load(),
		Dropped:  w.dropped.Load(),
	}
}

// drop counts n lost rows and logs them, at most once a second (with the
// running total), so that an overload does not flood the log.
func (w *Writer) drop(n int, why string, err error) {
	total := w.dropped.Add(int64(n))
	now := time.Now().UnixNano()
	last := w.dropLogged.Load()
	if now-last < int64(time.Second) || !w.dropLogged.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"rows", n, "reason", why, "dropped_total", total}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	w.log.Error("usage ledger: rows lost", attrs...)
}

// run is the owner goroutine: it batches rows from in, commits them, spills
// them while the store is down and replays the spill file when it is back.
func (w *Writer) run() {
	defer close(w.done)
	ctx := context.Background()
	if w.opt.SpillPath != "" {
		w.recover(ctx) //nolint:errcheck // logged; retried every RetryInterval
	}
	flushT := time.NewTicker(w.opt.FlushInterval)
	defer flushT.Stop()
	retryT := time.NewTicker(w.opt.RetryInterval)
	defer retryT.Stop()
	for {
		select {
		case r, ok := <-w.in:
			if !ok {
				w.closeErr = w.drain()
				return
			}
			w.receive(ctx, r)
		case <-flushT.C:
			if !w.down && w.spillDirty.Load() {
				w.recover(ctx) //nolint:errcheck // logged; retried
			} else {
				w.commitPending(ctx) //nolint:errcheck // logged; the rows are spilled or kept
			}
		case <-retryT.C:
			if w.down {
				w.recover(ctx) //nolint:errcheck // logged; retried
			}
		case reply := <-w.flushes:
			w.takeQueued(ctx)
			reply <- w.recover(ctx)
		}
	}
}

// receive takes r and commits (or spills) a full batch.
func (w *Writer) receive(ctx context.Context, r Row) {
	w.take(r)
	if len(w.pending) >= w.opt.MaxBatch {
		w.commitPending(ctx) //nolint:errcheck // logged; the rows are spilled or kept
	}
}

// take appends r to pending, or drops it when memory is full and there is
// no spill file to make room.
func (w *Writer) take(r Row) {
	if len(w.pending) >= w.opt.MaxQueue {
		// Only reachable while rows can go neither to the store nor to
		// the spill file: otherwise pending never exceeds MaxBatch.
		w.queue.Add(-1)
		w.drop(1, "store down and the in-memory queue is full", nil)
		return
	}
	w.pending = append(w.pending, r)
}

// takeQueued receives what in holds now.
func (w *Writer) takeQueued(ctx context.Context) {
	for {
		select {
		case r, ok := <-w.in:
			if !ok {
				return
			}
			w.receive(ctx, r)
		default:
			return
		}
	}
}

// insert runs one Insert under CommitTimeout.
func (w *Writer) insert(ctx context.Context, rows []Row) error {
	ctx, cancel := context.WithTimeout(ctx, w.opt.CommitTimeout)
	defer cancel()
	err := w.store.Insert(ctx, rows)
	if err != nil {
		w.errs.Add(1)
	}
	return err
}

// release forgets the first n pending rows.
func (w *Writer) release(n int) {
	w.pending = append(w.pending[:0], w.pending[n:]...)
	w.queue.Add(int64(-n))
}

// commitPending commits pending in batches; while the store is down (or
// when a commit fails) it spills them instead, or keeps them without a
// spill file. It returns the first store or spill error.
func (w *Writer) commitPending(ctx context.Context) error {
	var first error
	for len(w.pending) > 0 {
		n := min(len(w.pending), w.opt.MaxBatch)
		batch := w.pending[:n]
		if !w.down {
			err := w.insert(ctx, batch)
			if err == nil {
				w.rows.Add(int64(n))
				w.release(n)
				continue
			}
			w.setDown(err)
			first = firstErr(first, err)
		}
		if w.opt.SpillPath == "" {
			return firstErr(first, errStoreDown)
		}
		if err := w.spill(batch); err != nil {
			// The rows stay in memory; take drops newer ones beyond MaxQueue.
			w.log.Error("usage ledger: spill file write failed", "path", w.opt.SpillPath, "rows", n, "error", err)
			return firstErr(first, err)
		}
		w.release(n)
	}
	if w.down {
		return firstErr(first, errStoreDown)
	}
	return first
}

// recover replays the spill file, checks that the store answers and
// commits pending (spilling it while the store is down): after it returns
// nil every row handed to the writer so far is in the store.
func (w *Writer) recover(ctx context.Context) error {
	var err error
	if w.opt.SpillPath != "" {
		var n int64
		if n, err = w.replaySpill(ctx); err != nil {
			w.setDown(err)
		} else if n > 0 {
			w.log.Info("usage ledger: spill file replayed", "rows", n, "path", w.opt.SpillPath)
		}
	}
	if err == nil && w.down {
		pctx, cancel := context.WithTimeout(ctx, w.opt.CommitTimeout)
		err = w.store.Ping(pctx)
		cancel()
		if err != nil {
			w.setDown(err)
		} else {
			w.down = false
			w.log.Info("usage ledger: store available again")
		}
	}
	return firstErr(err, w.commitPending(ctx))
}

// setDown marks the store down, logging the first failure of an outage at
// Warn and later ones at Debug.
func (w *Writer) setDown(err error) {
	if !w.down {
		w.log.Warn("usage ledger: store unavailable; rows go to the spill file until it answers",
			"error", err, "spill_path", w.opt.SpillPath, "retry_interval", w.opt.RetryInterval)
	} else {
		w.log.Debug("usage ledger: store still unavailable", "error", err)
	}
	w.down = true
}

// drain empties the queue after Close: commit (or spill) everything, replay
// the spill file when the store is up, and report rows that are nowhere.
func (w *Writer) drain() error {
	ctx := w.closeCtx
	for r := range w.in {
		w.receive(ctx, r)
	}
	if w.opt.SpillPath != "" && (w.down || w.spillDirty.Load()) {
		// one more try: the store may be back since the last retry
		w.recover(ctx) //nolint:errcheck // the rows stay in the spill file for the next start
	}
	w.commitPending(ctx) //nolint:errcheck // what failed is spilled or counted below
	if n := len(w.pending); n > 0 {
		w.release(n)
		w.drop(n, "writer closed while the store was down", nil)
		return fmt.Errorf("usage: writer closed with %d rows neither committed nor spilled", n)
	}
	return nil
}

// firstErr returns a, or b when a is nil.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
