package usage_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qwend/qwend/usage"
)

// flakyStore wraps a real store: while down is set, Insert and Ping fail as
// if the database were unreachable. It records the size of every committed
// batch and signals each commit on committed.
type flakyStore struct {
	usage.Store
	down      atomic.Bool
	failAfter atomic.Int64 // when > 0: Insert calls left before down is set
	mu        sync.Mutex
	batches   []int
	committed chan int
}

var errUnreachable = errors.New("test: database unreachable")

func newFlaky(t *testing.T) *flakyStore {
	return &flakyStore{Store: openLedger(t, sqliteLedgerDSN(t)), committed: make(chan int, 1024)}
}

func (f *flakyStore) Insert(ctx context.Context, rows []usage.Row) error {
	if n := f.failAfter.Load(); n > 0 && f.failAfter.Add(-1) == 0 {
		f.down.Store(true)
	}
	if f.down.Load() {
		return errUnreachable
	}
	if err := f.Store.Insert(ctx, rows); err != nil {
		return err
	}
	f.mu.Lock()
	f.batches = append(f.batches, len(rows))
	f.mu.Unlock()
	select {
	case f.committed <- len(rows):
	default:
	}
	return nil
}

func (f *flakyStore) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errUnreachable
	}
	return f.Store.Ping(ctx)
}

func (f *flakyStore) batchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int{}, f.batches...)
}

// quietLog is a Logger for writers whose outages are expected.
var quietLog = slog.New(slog.DiscardHandler)

// neverTick is an interval that does not elapse during a test, so that only
// Flush, MaxBatch and Close make the writer act.
const neverTick = time.Hour

func ledgerRows(prefix string, n int) []usage.Row {
	rows := make([]usage.Row, n)
	for i := range rows {
		rows[i] = ledgerRow(i, i%2, "u", "f", "m")
		rows[i].RequestID = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return rows
}

// storedIDs returns the store's request ids, failing on a duplicate.
func storedIDs(t *testing.T, s usage.Store) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, r := range storedRows(t, s) {
		if ids[r.RequestID] {
			t.Fatalf("request %s stored twice", r.RequestID)
		}
		ids[r.RequestID] = true
	}
	return ids
}

func wantStoredIDs(t *testing.T, s usage.Store, rows ...[]usage.Row) {
	t.Helper()
	want := map[string]bool{}
	for _, rs := range rows {
		for _, r := range rs {
			want[r.RequestID] = true
		}
	}
	if got := storedIDs(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("store holds %d requests, want exactly the %d added", len(got), len(want))
	}
}

// spillLines reads the ids in a JSONL spill file; none when it is absent.
func spillLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r usage.Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("spill line %q: %v", sc.Text(), err)
		}
		ids = append(ids, r.RequestID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func closeWriter(t *testing.T, w *usage.Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func flushWriter(t *testing.T, w *usage.Writer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.Flush(ctx)
}

func TestWriterCommitsInBatches(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	w := usage.NewWriter(s, usage.WriterOptions{MaxBatch: 10, FlushInterval: neverTick, RetryInterval: neverTick})
	rows := ledgerRows("batch", 35)
	for _, r := range rows {
		w.Add(r)
	}
	if err := flushWriter(t, w); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := s.batchSizes(); !reflect.DeepEqual(got, []int{10, 10, 10, 5}) {
		t.Errorf("batches %v, want [10 10 10 5]", got)
	}
	if st := w.Stats(); st != (usage.WriterStats{Rows: 35}) {
		t.Errorf("Stats = %+v, want 35 rows committed and nothing else", st)
	}
	wantStoredIDs(t, s, rows)
	closeWriter(t, w)
	if err := w.Flush(context.Background()); !errors.Is(err, usage.ErrWriterClosed) {
		t.Errorf("Flush after Close = %v, want ErrWriterClosed", err)
	}
}

func TestWriterCommitsWithinFlushInterval(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	w := usage.NewWriter(s, usage.WriterOptions{FlushInterval: 20 * time.Millisecond, RetryInterval: neverTick})
	defer closeWriter(t, w)
	rows := ledgerRows("timer", 3)
	for _, r := range rows {
		w.Add(r)
	}
	// No Flush: the interval alone commits them.
	committed := 0
	for committed < len(rows) {
		select {
		case n := <-s.committed:
			committed += n
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d rows committed after 30 s", committed, len(rows))
		}
	}
	wantStoredIDs(t, s, rows)
}

func TestWriterCloseDrainsConcurrentAdds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts usage.WriterOptions
	}{
		// Room for every row in memory.
		{"memory", usage.WriterOptions{MaxBatch: 64}},
		// A queue far smaller than the burst: Add spills what does not fit,
		// and Close replays it.
		{"overflow", usage.WriterOptions{MaxBatch: 16, MaxQueue: 32, SpillPath: "spill.jsonl"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newFlaky(t)
			o := c.opts
			if o.SpillPath != "" {
				o.SpillPath = filepath.Join(t.TempDir(), o.SpillPath)
			}
			o.FlushInterval, o.RetryInterval, o.Logger = 5*time.Millisecond, neverTick, quietLog
			w := usage.NewWriter(s, o)
			const goroutines, each = 8, 100
			var wg sync.WaitGroup
			var added [goroutines][]usage.Row
			for g := 0; g < goroutines; g++ {
				added[g] = ledgerRows(fmt.Sprintf("g%02d", g), each)
				wg.Add(1)
				go func(rows []usage.Row) {
					defer wg.Done()
					for _, r := range rows {
						w.Add(r)
					}
				}(added[g])
			}
			wg.Wait()
			closeWriter(t, w)
			wantStoredIDs(t, s, added[:]...)
			st := w.Stats()
			if st.Rows+st.Replayed != goroutines*each || st.Queue != 0 || st.Dropped != 0 || st.Errors != 0 {
				t.Errorf("Stats = %+v, want Rows+Replayed = %d, nothing queued, dropped or failed", st, goroutines*each)
			}
			if o.SpillPath == "" && st.Spilled != 0 {
				t.Errorf("Spilled = %d without a spill file", st.Spilled)
			}
			if o.SpillPath != "" {
				if st.Spilled != st.Replayed {
					t.Errorf("Spilled %d, Replayed %d: want equal", st.Spilled, st.Replayed)
				}
				for _, p := range []string{o.SpillPath, o.SpillPath + ".replay"} {
					if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s left after Close: %v", p, err)
					}
				}
			}
			if err := w.Close(context.Background()); err != nil {
				t.Errorf("second Close = %v", err)
			}
		})
	}
}

func TestWriterSpillsWhileStoreDownAndReplays(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	spill := filepath.Join(t.TempDir(), "spill", "usage.jsonl")
	s.down.Store(true)
	w := usage.NewWriter(s, usage.WriterOptions{SpillPath: spill, MaxBatch: 8, FlushInterval: neverTick, RetryInterval: neverTick, Logger: quietLog})
	defer closeWriter(t, w)

	first := ledgerRows("down1", 20)
	for _, r := range first {
		w.Add(r)
	}
	if err := flushWriter(t, w); err == nil {
		t.Fatal("Flush with the store down returned nil")
	}
	second := ledgerRows("down2", 5)
	for _, r := range second {
		w.Add(r)
	}
	if err := flushWriter(t, w); err == nil {
		t.Fatal("second Flush with the store down returned nil")
	}
	if st := w.Stats(); st.Spilled != 25 || st.Queue != 0 || st.Rows != 0 || st.Dropped != 0 || st.Errors < 1 {
		t.Errorf("Stats while down = %+v, want 25 spilled, none queued, committed or dropped, errors counted", st)
	}
	// The rows of the failed replay attempts wait in ".replay", newer ones
	// in the spill file.
	ids := append(spillLines(t, spill+".replay"), spillLines(t, spill)...)
	if len(ids) != 25 || ids[0] != first[0].RequestID || ids[24] != second[4].RequestID {
		t.Errorf("spill file holds %d rows (%v...), want the 25 added in order", len(ids), ids[:min(3, len(ids))])
	}
	if n := len(storedRows(t, s)); n != 0 {
		t.Fatalf("store took %d rows while down", n)
	}

	// The store comes back: the next attempt replays the file, once.
	s.down.Store(false)
	if err := flushWriter(t, w); err != nil {
		t.Fatalf("Flush with the store back: %v", err)
	}
	wantStoredIDs(t, s, first, second)
	if st := w.Stats(); st.Replayed != 25 || st.Queue != 0 || st.Dropped != 0 {
		t.Errorf("Stats after recovery = %+v, want 25 replayed", st)
	}
	if _, err := os.Stat(spill); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spill file not removed after replay: %v", err)
	}

	// Healthy again: new rows go straight to the store.
	third := ledgerRows("up", 3)
	for _, r := range third {
		w.Add(r)
	}
	if err := flushWriter(t, w); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wantStoredIDs(t, s, first, second, third)
	if st := w.Stats(); st.Rows != 3 || st.Spilled != 25 || st.Replayed != 25 {
		t.Errorf("Stats = %+v, want 3 committed, 25 spilled and replayed", st)
	}
}

func TestWriterReplayInterruptedMidway(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	spill := filepath.Join(t.TempDir(), "usage.jsonl")
	rows := ledgerRows("mid", 45)
	writeSpill(t, spill, rows)
	// The store takes two replay batches, then fails again.
	s.failAfter.Store(3)
	w := usage.NewWriter(s, usage.WriterOptions{SpillPath: spill, MaxBatch: 10, FlushInterval: neverTick, RetryInterval: neverTick, Logger: quietLog})
	defer closeWriter(t, w)
	if err := flushWriter(t, w); err == nil {
		t.Fatal("Flush with the store failing mid-replay returned nil")
	}
	if n := len(storedIDs(t, s)); n != 20 {
		t.Fatalf("%d rows stored before the store failed, want 20", n)
	}
	s.down.Store(false)
	if err := flushWriter(t, w); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wantStoredIDs(t, s, rows)
	// The second attempt resumed after the committed batches.
	if st := w.Stats(); st.Replayed != 45 || st.Spilled != 0 || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want 45 replayed, none twice", st)
	}
}

// writeSpill writes rows to path as a spill file.
func writeSpill(t *testing.T, path string, rows []usage.Row) {
	t.Helper()
	var buf []byte
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(append(buf, b...), '\n')
	}
	appendToFile(t, path, string(buf))
}

func TestWriterReplaysLeftoverSpillAtStart(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	spill := filepath.Join(t.TempDir(), "usage.jsonl")

	// A first writer closes while the store is down: Close spills.
	s.down.Store(true)
	w1 := usage.NewWriter(s, usage.WriterOptions{SpillPath: spill, FlushInterval: neverTick, RetryInterval: neverTick, Logger: quietLog})
	early := ledgerRows("early", 12)
	for _, r := range early {
		w1.Add(r)
	}
	closeWriter(t, w1)
	if st := w1.Stats(); st.Spilled != 12 || st.Queue != 0 {
		t.Fatalf("first writer's Stats = %+v, want 12 spilled", st)
	}
	// Add after Close goes to the spill file too.
	late := ledgerRows("late", 1)
	w1.Add(late[0])
	if st := w1.Stats(); st.Spilled != 13 {
		t.Fatalf("Add after Close: Spilled = %d, want 13", st.Spilled)
	}
	// A crash mid-append left a partial line.
	appendToFile(t, spill, `{"request_id":"torn-00001","ti`)
	// A crash mid-replay left a ".replay" file whose first rows are stored.
	crashed := ledgerRows("crashed", 6)
	insertRows(t, s.Store, crashed[:2])
	writeSpill(t, spill+".replay", crashed)

	s.down.Store(false)
	w2 := usage.NewWriter(s, usage.WriterOptions{SpillPath: spill, FlushInterval: neverTick, RetryInterval: neverTick, Logger: quietLog})
	if err := flushWriter(t, w2); err != nil { // returns after the start-up replay
		t.Fatalf("Flush: %v", err)
	}
	wantStoredIDs(t, s, early, late, crashed)
	if st := w2.Stats(); st.Replayed != 19 || st.Dropped != 1 || st.Rows != 0 {
		t.Errorf("Stats = %+v, want 19 replayed (12+1+6), the torn line dropped", st)
	}
	for _, p := range []string{spill, spill + ".replay"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after replay: %v", p, err)
		}
	}
	closeWriter(t, w2)
}

func TestWriterWithoutSpillKeepsRowsInMemory(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	s.down.Store(true)
	w := usage.NewWriter(s, usage.WriterOptions{MaxQueue: 8, MaxBatch: 4, FlushInterval: neverTick, RetryInterval: neverTick, Logger: quietLog})
	defer closeWriter(t, w)
	rows := ledgerRows("mem", 20)
	w.Add(rows[0])
	if err := flushWriter(t, w); err == nil { // the writer learns that the store is down
		t.Fatal("Flush with the store down returned nil")
	}
	for _, r := range rows[1:] {
		w.Add(r)
	}
	if err := flushWriter(t, w); err == nil {
		t.Fatal("Flush with the store down returned nil")
	}
	// 8 rows wait (MaxQueue); the 12 beyond them are dropped and counted.
	if st := w.Stats(); st.Queue != 8 || st.Dropped != 12 || st.Spilled != 0 {
		t.Errorf("Stats while down = %+v, want 8 queued, 12 dropped", st)
	}
	s.down.Store(false)
	if err := flushWriter(t, w); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wantStoredIDs(t, s, rows[:8])
	if st := w.Stats(); st.Queue != 0 || st.Rows != 8 {
		t.Errorf("Stats after recovery = %+v, want 8 committed", st)
	}
}

func TestWriterCloseWhileDownWithoutSpillReportsLoss(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	s.down.Store(true)
	w := usage.NewWriter(s, usage.WriterOptions{FlushInterval: neverTick, RetryInterval: neverTick, Logger: quietLog})
	for _, r := range ledgerRows("lost", 3) {
		w.Add(r)
	}
	if err := w.Close(context.Background()); err == nil {
		t.Fatal("Close lost 3 rows and returned nil")
	}
	if st := w.Stats(); st.Dropped != 3 || st.Queue != 0 {
		t.Errorf("Stats = %+v, want 3 dropped", st)
	}
}

func appendToFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterStoreDownLosesNothing(t *testing.T) {
	t.Parallel()
	s := newFlaky(t)
	s.down.Store(true)
	spill := filepath.Join(t.TempDir(), "usage.jsonl")
	// A burst far beyond the queue, from many goroutines, during an outage.
	o := usage.WriterOptions{SpillPath: spill, MaxQueue: 16, MaxBatch: 4, FlushInterval: 5 * time.Millisecond, RetryInterval: 5 * time.Millisecond, Logger: quietLog}
	w := usage.NewWriter(s, o)
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	var added [goroutines][]usage.Row
	for g := 0; g < goroutines; g++ {
		added[g] = ledgerRows(fmt.Sprintf("out%02d", g), each)
		wg.Add(1)
		go func(rows []usage.Row) {
			defer wg.Done()
			for _, r := range rows {
				w.Add(r)
			}
		}(added[g])
	}
	wg.Wait()
	closeWriter(t, w)
	st := w.Stats()
	if st.Spilled != goroutines*each || st.Dropped != 0 || st.Queue != 0 || st.Rows != 0 {
		t.Errorf("Stats = %+v, want all %d rows spilled, none dropped", st, goroutines*each)
	}
	ids := map[string]bool{}
	for _, id := range append(spillLines(t, spill+".replay"), spillLines(t, spill)...) {
		ids[id] = true
	}
	if len(ids) != goroutines*each {
		t.Fatalf("spill files hold %d distinct rows, want %d", len(ids), goroutines*each)
	}

	// The next start, with the store back, replays them.
	s.down.Store(false)
	w2 := usage.NewWriter(s, usage.WriterOptions{SpillPath: spill, FlushInterval: neverTick, RetryInterval: neverTick})
	defer closeWriter(t, w2)
	if err := flushWriter(t, w2); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wantStoredIDs(t, s, added[:]...)
}
