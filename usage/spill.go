package usage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The spill file is JSONL: one Row (its JSON form) per line, appended and
// fsynced by spill. To replay it, the owner goroutine renames it to
// SpillPath+".replay" (so that Add can go on appending to a fresh
// SpillPath), commits that file's rows batch by batch and removes it. A
// ".replay" file found at the next attempt, or at the next start after a
// crash, is replayed first; Insert skips the rows that made it already.

// spill appends rows to the spill file and fsyncs it.
func (w *Writer) spill(rows []Row) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return err
		}
	}
	w.spillMu.Lock()
	defer w.spillMu.Unlock()
	path := w.opt.SpillPath
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if size := fi.Size(); size > 0 {
		// A crash mid-append can leave a partial last line: end it, so
		// that only that line is unreadable and not the next one too.
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if fi.Size() == 0 {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	w.spilled.Add(int64(len(rows)))
	return nil
}

// replaySpill commits the rows of the spill files (".replay" first) and
// removes them; it returns how many rows it committed, and the first error,
// after which the rest stays on disk for the next attempt.
func (w *Writer) replaySpill(ctx context.Context) (int64, error) {
	replay := w.opt.SpillPath + ".replay"
	var total int64
	if _, err := os.Stat(replay); err == nil {
		n, err := w.replayFile(ctx, replay)
		total += n
		if err != nil {
			return total, err
		}
	}
	w.spillMu.Lock()
	w.spillDirty.Store(false)
	err := os.Rename(w.opt.SpillPath, replay)
	w.spillMu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return total, nil
	}
	if err != nil {
		return total, err
	}
	w.replayOff, w.badOff = 0, 0
	n, err := w.replayFile(ctx, replay)
	return total + n, err
}

// replayFile commits the rows of path from replayOff on, MaxBatch at a
// time, then removes path. Unreadable lines (a partial last line after a
// crash) are logged and counted as dropped, once each.
func (w *Writer) replayFile(ctx context.Context, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(w.replayOff, io.SeekStart); err != nil {
		return 0, err
	}
	rd := bufio.NewReader(f)
	off := w.replayOff
	var total int64
	var batch []Row
	commit := func(end int64) error {
		if len(batch) > 0 {
			if err := w.insert(ctx, batch); err != nil {
				return err
			}
			w.replayed.Add(int64(len(batch)))
			total += int64(len(batch))
			batch = batch[:0]
		}
		w.replayOff = end
		return nil
	}
	for {
		line, rerr := rd.ReadBytes('\n')
		off += int64(len(line))
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return total, rerr
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var r Row
			err := json.Unmarshal(line, &r)
			if err == nil {
				r, err = normalizeRow(r)
			}
			if err == nil {
				batch = append(batch, r)
			} else if off > w.badOff {
				w.badOff = off
				w.drop(1, "unreadable spill file line", err)
			}
		}
		if len(batch) >= w.opt.MaxBatch || errors.Is(rerr, io.EOF) {
			if err := commit(off); err != nil {
				return total, err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
	}
	f.Close()
	if err := os.Remove(path); err != nil {
		return total, err
	}
	w.replayOff, w.badOff = 0, 0
	return total, syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory, making a file's creation, rename or removal
// in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
