package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// slot is one llama.cpp sequence id and the tokens its KV cache holds.
type slot struct {
	id       int
	cache    []int // tokens in the KV cache, in position order
	seq      *sequence
	pos      int // next prompt index to prefill; len(prompt) once decoding
	tokens   []int
	buf      textBuffer
	sampler  *sampler
	logitIdx int // index of this slot's logits row in the batch, -1 if none
	// stepTokens is how many of this step's batch tokens are this slot's
	stepTokens int
	prefill    bool      // this step's tokens are prompt tokens
	logits     []float32 // that row, valid until the next decode
	next       int       // the token sampled in this step
	lastUsed   time.Time
	lp         logprobState // when the sequence asks for logprobs
}

// newSlots makes the slots and the sampling workers. A slot's token lists
// are allocated up front for a context of up to 8192 tokens, so that steps
// do not allocate; longer ones grow, rarely.
func (e *Engine) newSlots() []*slot {
	slots := make([]*slot, e.cfg.Parallel)
	n := min(e.cfg.ContextPerSlot, 8192)
	for i := range slots {
		slots[i] = &slot{id: i, logitIdx: -1, cache: make([]int, 0, n), tokens: make([]int, 0, n)}
	}
	e.sampled = make([]*slot, 0, len(slots))
	e.pool = newSamplePool(e.sampleWorkers(), func(s *slot) {
		logprobs := s.seq.req.Logprobs != nil
		if logprobs {
			s.lp.keep(s.logits) // the sampler rewrites the row
		}
		var ok bool
		if s.next, ok = s.sampler.pick(s.logits, s.tokens); !ok {
			s.next = -1 // the grammar allows no token
		}
		if logprobs && ok {
			s.lp.measure(s.next, s.seq.req.TopLogprobs)
		}
	})
	return slots
}

// schedule is the only goroutine that touches the llama context.
func (e *Engine) schedule(ctx context.Context) {
	defer close(e.done)
	slots := e.newSlots()
	var pending []*sequence
	defer e.pool.close()
	defer func() {
		// fail whatever is still here
		for _, s := range slots {
			if s.seq != nil {
				e.finish(s, ErrClosed)
			}
		}
		for _, q := range pending {
			q.err = ErrClosed
			close(q.done)
		}
		for {
			select {
			case q := <-e.incoming:
				q.err = ErrClosed
				close(q.done)
			default:
				return
			}
		}
	}()

	active := func() bool {
		for _, s := range slots {
			if s.seq != nil {
				return true
			}
		}
		return false
	}
	for {
		if !active() && len(pending) == 0 {
			select {
			case q := <-e.incoming:
				pending = append(pending, q)
			case <-ctx.Done():
				return
			}
		}
		// take what has arrived, without waiting
	drain:
		for {
			select {
			case q := <-e.incoming:
				pending = append(pending, q)
			case <-ctx.Done():
				return
			default:
				break drain
			}
		}
		// drop what was cancelled while waiting or running
		pending = e.dropCancelled(pending)
		for _, s := range slots {
			if s.seq != nil && s.seq.ctx.Err() != nil {
				e.finish(s, ctxErr(s.seq.ctx))
			}
		}
		pending = e.admit(slots, pending)
		pending = e.makeRoom(slots, pending)
		if !active() {
			continue
		}
		e.step(slots)
	}
}

func (e *Engine) dropCancelled(pending []*sequence) []*sequence {
	kept := pending[:0]
	for _, q := range pending {
		if q.ctx.Err() != nil {
			q.err = ctxErr(q.ctx)
			q.res.Finished = time.Now()
			close(q.done)
			continue
		}
		kept = append(kept, q)
	}
	return kept
}

// admit gives waiting sequences free slots, first come first served. Each
// goes to the free slot whose cache shares the longest prefix with its
// prompt (least recently used on a tie), and reuses that prefix. With a
// shared KV pool a sequence is admitted only when the pool has cells for
// its prompt and a first stretch of output (idle slots' cached prefixes
// are dropped for it, least recently used first); otherwise it waits at
// the head of the queue.
func (e *Engine) admit(slots []*slot, pending []*sequence) []*sequence {
	for len(pending) > 0 {
		q := pending[0]
		var best *slot
		bestLen := -1
		for _, s := range slots {
			if s.seq != nil {
				continue
			}
			n := commonPrefix(s.cache, q.prompt)
			if n > bestLen || (n == bestLen && s.lastUsed.Before(best.lastUsed)) {
				best, bestLen = s, n
			}
		}
		if best == nil {
			break
		}
		// keep at least one prompt token to evaluate, for its logits
		reuse := min(bestLen, len(q.prompt)-1)
		if e.cfg.KVPool > 0 {
			need := len(q.prompt) - reuse + min(q.maxOut-q.res.OutputTokens, e.cfg.BatchSize)
			if !e.freeCells(slots, best, need-(len(best.cache)-reuse)) {
				break
			}
		}
		pending = pending[1:]
		if !e.lctx.KvCacheSeqRm(best.id, reuse, -1) {
			reuse = 0
			e.lctx.KvCacheSeqRm(best.id, 0, -1)
		}
		e.kvUsed.Add(int64(reuse - len(best.cache)))
		best.cache = best.cache[:reuse]
		best.seq = q
		best.pos = reuse
		best.tokens = append(best.tokens[:0], q.prompt...)
		e.running.Add(1)
		q.admittedAt = time.Now()
		if r := q.resume; r != nil {
			// a preempted sequence goes on where it was
			best.buf, best.sampler, best.lp = r.buf, r.sampler, r.lp
			q.resume = nil
			continue
		}
		best.buf = textBuffer{stops: q.req.Stop}
		best.lp.reset()
		best.sampler = newSampler(q.req.Sampling)
		best.sampler.grammar, best.sampler.ends = q.grammar, e.ends
		q.res.CachedTokens = reuse
		q.res.Admitted = time.Now()
		q.setProgress(reuse, reuse, q.res.Admitted)
	}
	return pending
}

// freeCells makes n cells of the shared KV pool free, dropping idle slots'
// cached prefixes (least recently used first, keep excepted) as needed;
// false when they are not enough.
func (e *Engine) freeCells(slots []*slot, keep *slot, n int) bool {
	for e.cfg.KVPool-int(e.kvUsed.Load()) < n {
		var lru *slot
		for _, s := range slots {
			if s.seq == nil && s != keep && len(s.cache) > 0 && (lru == nil || s.lastUsed.Before(lru.lastUsed)) {
				lru = s
			}
		}
		if lru == nil {
			return false
		}
		e.lctx.KvCacheSeqRm(lru.id, 0, -1)
		e.kvUsed.Add(-int64(len(lru.cache)))
		lru.cache = lru.cache[:0]
	}
	return true
}

// makeRoom, with a shared KV pool, frees the cells this step needs: one
// for each decoding sequence, and at least one for progress. Idle slots'
// caches go first; then the sequence admitted last is preempted (its
// cells freed, its state kept) and put back at the head of the queue,
// which is returned.
func (e *Engine) makeRoom(slots []*slot, pending []*sequence) []*sequence {
	if e.cfg.KVPool == 0 {
		return pending
	}
	for {
		need, running := 0, 0
		var last *slot
		for _, s := range slots {
			if s.seq == nil {
				continue
			}
			running++
			if s.pos >= len(s.seq.prompt) {
				need++
			}
			if last == nil || s.seq.admittedAt.After(last.seq.admittedAt) {
				last = s
			}
		}
		if running == 0 || e.freeCells(slots, nil, max(need, 1)) || running == 1 {
			return pending
		}
		pending = append([]*sequence{e.preempt(last)}, pending...)
	}
}

// preempt takes s's sequence off it: the KV cells go back to the pool,
// and the sequence keeps what it needs to be recomputed and go on (its
// prompt becomes the prompt and the output so far, whose last token is
// not in the cache yet).
func (e *Engine) preempt(s *slot) *sequence {
	q := s.seq
	q.prompt = slices.Clone(s.tokens)
	q.resume = &resumeState{buf: s.buf, sampler: s.sampler, lp: s.lp}
	s.lp = logprobState{} // the sequence owns the old buffers now
	e.lctx.KvCacheSeqRm(s.id, 0, -1)
	e.kvUsed.Add(-int64(len(s.cache)))
	s.cache = s.cache[:0]
	s.seq = nil
	s.lastUsed = time.Now()
	e.running.Add(-1)
	e.preemptions.Add(1)
	return q
}

func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// step packs one batch from every active slot (a chunk of prompt for those
// prefilling, one token for those decoding), decodes it, and samples.
func (e *Engine) step(slots []*slot) {
	defer e.stepped.Store(time.Now().UnixNano())
	var st StepStats
	e.batch.Clear()
	// with a shared KV pool, prompt chunks get what the decoding
	// sequences leave of the free cells (makeRoom left at least that)
	free := -1
	if e.cfg.KVPool > 0 {
		free = e.cfg.KVPool - int(e.kvUsed.Load())
		for _, s := range slots {
			if s.seq != nil && s.pos >= len(s.seq.prompt) {
				free--
			}
		}
	}
	for _, s := range slots {
		s.logitIdx = -1
		s.stepTokens = 0
		s.prefill = false
		if s.seq == nil {
			continue
		}
		st.Sequences++
		p := s.seq.prompt
		if s.pos < len(p) {
			end := min(len(p), s.pos+e.cfg.BatchSize)
			if free >= 0 {
				end = min(end, s.pos+free)
				free -= end - s.pos
				if end == s.pos {
					continue // no cell for it this step
				}
			}
			s.stepTokens = end - s.pos
			for i := s.pos; i < end; i++ {
				last := i == len(p)-1
				if last {
					s.logitIdx = e.batch.NumTokens()
				}
				e.batch.Add(p[i], nil, len(s.cache), last, s.id)
				s.cache = append(s.cache, p[i])
			}
			st.PromptTokens += end - s.pos
			s.pos = end
			s.prefill = true
			continue
		}
		// decoding: feed the last sampled token
		s.stepTokens = 1
		t := s.tokens[len(s.tokens)-1]
		s.logitIdx = e.batch.NumTokens()
		e.batch.Add(t, nil, len(s.cache), true, s.id)
		s.cache = append(s.cache, t)
	}
	st.Tokens = e.batch.NumTokens()
	e.kvUsed.Add(int64(st.Tokens))

	t0 := time.Now()
	err := e.lctx.Decode(e.batch)
	t1 := time.Now()
	st.Decode = t1.Sub(t0)
	if err != nil {
		// the cache of every slot in this batch is now unknown: drop it
		for _, s := range slots {
			if s.seq != nil {
				e.lctx.KvCacheSeqRm(s.id, 0, -1)
				e.kvUsed.Add(-int64(len(s.cache)))
				s.cache = s.cache[:0]
				e.finish(s, fmt.Errorf("decode: %w", err))
			}
		}
		e.obs.ObserveStep(st)
		return
	}

	for _, s := range slots {
		if s.prefill {
			s.seq.setProgress(s.seq.res.CachedTokens, s.pos, t1)
		}
	}

	// sample every sequence that has logits, across cores when the
	// vocabulary is large enough for it to pay
	sampled := e.sampled[:0]
	for _, s := range slots {
		if s.seq != nil && s.logitIdx >= 0 {
			sampled = append(sampled, s)
		}
	}
	ts := time.Now()
	// llama.cpp may reorder its outputs on the first read: read the rows
	// here, on the scheduler, and let the workers only sample
	for _, s := range sampled {
		s.logits = logitsView(e.lctx, s.logitIdx, e.nVocab)
	}
	e.pool.run(sampled)
	now := time.Now()
	sampleTime := now.Sub(ts)
	// each sequence's share of the step so far (decode and sampling), by
	// its tokens in the batch: what GPU-hour pricing charges it
	if wall := now.Sub(t0); st.Tokens > 0 {
		for _, s := range slots {
			if s.seq != nil && s.stepTokens > 0 {
				s.seq.res.Compute += wall * time.Duration(s.stepTokens) / time.Duration(st.Tokens)
			}
		}
	}
	for _, s := range sampled {
		q := s.seq
		tok := s.next
		if q.res.FirstToken.IsZero() {
			q.res.FirstToken = now
		}
		if tok < 0 {
			e.finish(s, fmt.Errorf("%w: %v", ErrInvalid, errGrammarDead))
			continue
		}
		if e.ends[tok] {
			// end of generation, or another control token: never text
			e.finishReason(s, FinishStop)
			continue
		}
		s.tokens = append(s.tokens, tok)
		q.res.OutputTokens++
		piece := e.piece(tok)
		if q.req.Logprobs != nil {
			s.lp.add(tok, piece, e.piece)
		}
		text, stopped := s.buf.push(piece)
		if text != "" {
			q.out <- e.output(s, text)
		}
		switch {
		case stopped:
			e.finishReason(s, FinishStop)
		case q.res.OutputTokens >= q.maxOut:
			e.finishReason(s, FinishLength)
		}
	}
	st.Sample = sampleTime
	st.Send = time.Since(t1) - sampleTime
	e.obs.ObserveStep(st)
}

func (e *Engine) finishReason(s *slot, reason string) {
	rest, stopped := s.buf.flush()
	if rest != "" {
		s.seq.out <- e.output(s, rest)
	}
	if stopped {
		reason = FinishStop // a stop string held back ended the text
	}
	s.seq.res.FinishReason = reason
	if s.seq.req.ReturnTokens {
		s.seq.res.Tokens = slices.Clone(s.tokens)
	}
	e.finish(s, nil)
}

// finish ends the slot's sequence with err and frees the slot. The tokens
// decoded so far stay in the KV cache for prefix reuse.
func (e *Engine) finish(s *slot, err error) {
	q := s.seq
	q.err = err
	if errors.Is(err, ErrClosed) || q.res.Finished.IsZero() {
		q.res.Finished = time.Now()
	}
	s.seq = nil
	s.lastUsed = time.Now()
	e.running.Add(-1)
	close(q.done)
}

// parallelSampleMin is the vocabulary size from which sampling several
// sequences is spread over workers; below it the hand-off costs more than
// the sampling.
const parallelSampleMin = 32768

// sampleWorkers is how many goroutines besides the scheduler sample.
func (e *Engine) sampleWorkers() int {
	if e.nVocab < parallelSampleMin {
		return 0
	}
	return min(e.cfg.Parallel, runtime.GOMAXPROCS(0)) - 1
}

// samplePool runs one function over the slots of a step on the scheduler
// and on long-lived workers, each taking the next slot not yet taken. It
// neither allocates nor starts goroutines per step.
type samplePool struct {
	fn    func(*slot)
	start chan struct{}
	wg    sync.WaitGroup
	next  atomic.Int64
	ss    []*slot
	n     int // workers
}

func newSamplePool(workers int, fn func(*slot)) *samplePool {
	p := &samplePool{fn: fn, start: make(chan struct{}), n: workers}
	for range workers {
		go func() {
			for range p.start {
				p.drain()
				p.wg.Done()
			}
		}()
	}
	return p
}

func (p *samplePool) drain() {
	for {
		i := int(p.next.Add(1)) - 1
		if i >= len(p.ss) {
			return
		}
		p.fn(p.ss[i])
	}
}

// run calls fn on every slot of ss and returns when all are done.
func (p *samplePool) run(ss []*slot) {
	if p.n == 0 || len(ss) < 2 {
		for _, s := range ss {
			p.fn(s)
		}
		return
	}
	p.ss = ss
	p.next.Store(0)
	w := min(p.n, len(ss)-1)
	p.wg.Add(w)
	for range w {
		p.start <- struct{}{}
	}
	p.drain()
	p.wg.Wait()
	p.ss = nil
}

func (p *samplePool) close() { close(p.start) }

// piece returns a token's text, cached: the vocabulary does not change.
// output is text going out of slot s, with the logprobs of the tokens
// it completes when the sequence asks for them.
func (e *Engine) output(s *slot, text string) output {
	o := output{text: text}
	if s.seq.req.Logprobs != nil {
		o.logprobs = s.lp.release(len(text))
	}
	return o
}

func (e *Engine) piece(tok int) string {
	if tok < 0 || tok >= len(e.pieces) {
		return e.model.TokenToPiece(tok)
	}
	if !e.pieceOK[tok] {
		e.pieces[tok] = e.model.TokenToPiece(tok)
		e.pieceOK[tok] = true
	}
	return e.pieces[tok]
}
