package models

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ollama/ollama/fs/ggml"
)

// GGUF value types (gguf.h's enum gguf_type) and the bytes of the scalar
// ones; strings and arrays are sized by what follows.
var ggufScalarSize = map[uint32]int64{
	0: 1, 1: 1, // uint8, int8
	2: 2, 3: 2, // uint16, int16
	4: 4, 5: 4, 6: 4, // uint32, int32, float32
	7:  1,               // bool
	10: 8, 11: 8, 12: 8, // uint64, int64, float64
}

const (
	ggufTypeString = 8
	ggufTypeArray  = 9
	ggufMaxDims    = 4 // GGML_MAX_DIMS
)

// errGGUFHeader is what checkGGUFHeader's refusals wrap.
var errGGUFHeader = errors.New("malformed GGUF header")

// checkGGUFHeader reads the GGUF header in r (the whole file is size
// bytes) and refuses one that claims more than the file holds: a count of
// key/value pairs or tensors, a string's length, an array's length or a
// tensor's dimension count that the bytes left could not hold. The
// decoder Inspect uses (Ollama's) allocates what the header claims before
// reading it, so such a file would take the process's memory; and it
// divides by general.alignment and by each tensor type's block size, so
// those must be sound too. GGUF
// versions 2 and 3 are read (llama.cpp refuses version 1 too); the format
// is ggml's docs/gguf.md.
func checkGGUFHeader(r io.Reader, size int64) error {
	br := bufio.NewReader(r)
	left := size
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errGGUFHeader, fmt.Sprintf(format, a...))
	}
	read := func(n int64) ([]byte, error) {
		if n > left {
			return nil, fail("%d bytes claimed at offset %d, %d left in the file", n, size-left, left)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fail("offset %d: %v", size-left, err)
		}
		left -= n
		return b, nil
	}
	skip := func(n int64) error {
		if n > left || n < 0 {
			return fail("%d bytes claimed at offset %d, %d left in the file", n, size-left, left)
		}
		if _, err := br.Discard(int(n)); err != nil {
			return fail("offset %d: %v", size-left, err)
		}
		left -= n
		return nil
	}
	u32 := func() (uint32, error) {
		b, err := read(4)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint32(b), nil
	}
	u64 := func() (uint64, error) {
		b, err := read(8)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(b), nil
	}
	// count reads a count of items of at least min bytes each
	count := func(what string, min int64) (int64, error) {
		n, err := u64()
		if err != nil {
			return 0, err
		}
		if n > uint64(left/min) {
			return 0, fail("%d %s claimed at offset %d, more than the %d bytes left could hold", n, what, size-left-8, left)
		}
		return int64(n), nil
	}
	str := func() error {
		n, err := count("string bytes", 1)
		if err != nil {
			return err
		}
		return skip(n)
	}
	// key reads a key/value pair's key (a long one is skipped: no key it
	// is checked against is long)
	key := func() (string, error) {
		n, err := count("string bytes", 1)
		if err != nil {
			return "", err
		}
		if n > 64 {
			return "", skip(n)
		}
		b, err := read(n)
		return string(b), err
	}

	magic, err := read(4)
	if err != nil {
		return err
	}
	if string(magic) != "GGUF" {
		return fail("no GGUF magic")
	}
	version, err := u32()
	if err != nil {
		return err
	}
	if version != 2 && version != 3 {
		return fail("version %d (2 and 3 are read)", version)
	}
	// a tensor's info takes at least a name length, a dimension count, a
	// type and an offset; a key/value pair a key length and a type
	tensors, err := count("tensors", 8+4+4+8)
	if err != nil {
		return err
	}
	kvs, err := count("key/value pairs", 8+4)
	if err != nil {
		return err
	}
	for range kvs {
		k, err := key()
		if err != nil {
			return err
		}
		typ, err := u32()
		if err != nil {
			return err
		}
		switch {
		case k == "general.alignment":
			// the decoder divides by it: a power of two, as llama.cpp wants
			var a uint32
			if typ == 4 {
				a, err = u32()
			}
			if err == nil && (typ != 4 || a == 0 || a&(a-1) != 0) {
				err = fail("general.alignment is not a uint32 power of two")
			}
		case typ == ggufTypeString:
			err = str()
		case typ == ggufTypeArray:
			var elem uint32
			if elem, err = u32(); err != nil {
				return err
			}
			switch {
			case elem == ggufTypeString:
				var n int64
				if n, err = count("array strings", 8); err == nil {
					for i := int64(0); i < n && err == nil; i++ {
						err = str()
					}
				}
			case ggufScalarSize[elem] > 0:
				var n int64
				if n, err = count("array elements", ggufScalarSize[elem]); err == nil {
					err = skip(n * ggufScalarSize[elem])
				}
			default:
				err = fail("array of type %d (nested arrays are not GGUF)", elem)
			}
		case ggufScalarSize[typ] > 0:
			err = skip(ggufScalarSize[typ])
		default:
			err = fail("value type %d", typ)
		}
		if err != nil {
			return err
		}
	}
	for range tensors {
		if err := str(); err != nil {
			return err
		}
		dims, err := u32()
		if err != nil {
			return err
		}
		if dims > ggufMaxDims {
			return fail("a tensor of %d dimensions (at most %d)", dims, ggufMaxDims)
		}
		if err := skip(int64(dims) * 8); err != nil {
			return err
		}
		kind, err := u32()
		if err != nil {
			return err
		}
		// the decoder divides by the type's block size
		if t := ggml.TensorType(kind); t.BlockSize() == 0 || t.TypeSize() == 0 {
			return fail("tensor type %d is not a ggml type", kind)
		}
		if err := skip(8); err != nil { // its offset
			return err
		}
	}
	return nil
}
