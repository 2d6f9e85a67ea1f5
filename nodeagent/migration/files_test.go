package migration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/wire"
)

func TestWriteChunk(t *testing.T) {
	root := filepath.Join(t.TempDir(), "images")
	outside := t.TempDir()
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "link.img")); err != nil {
		t.Fatal(err)
	}
	write := func(path string, off int64, data string, last bool, mode uint32) error {
		return writeChunk(root, &wire.FileChunk{Migration: "m", Kind: "image", Path: path, Offset: off, Data: []byte(data), Last: last, Mode: mode})
	}
	t.Run("in order, then resent", func(t *testing.T) {
		for range 2 {
			if err := write("a/b/core.img", 0, "hello ", false, 0); err != nil {
				t.Fatal(err)
			}
			if err := write("a/b/core.img", 6, "world", true, 0); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(filepath.Join(root, "a/b/core.img"))
		if err != nil || string(b) != "hello world" {
			t.Fatalf("got %q, %v", b, err)
		}
		fi, _ := os.Stat(filepath.Join(root, "a/b/core.img"))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	})
	t.Run("last truncates", func(t *testing.T) {
		if err := write("a/b/core.img", 0, "bye", true, 0o640); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(root, "a/b/core.img"))
		fi, _ := os.Stat(filepath.Join(root, "a/b/core.img"))
		if string(b) != "bye" || fi.Mode().Perm() != 0o640 {
			t.Fatalf("got %q mode %v, want \"bye\" 0640", b, fi.Mode().Perm())
		}
	})
	for _, tc := range []struct{ name, path string }{
		{"symlinked dir", "escape/f"},
		{"symlinked file", "link.img"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := write(tc.path, 0, "x", true, 0); err == nil {
				t.Fatalf("write through %s succeeded", tc.path)
			}
			if _, err := os.Stat(filepath.Join(outside, "f")); err == nil {
				t.Fatal("a file was written outside the root")
			}
		})
	}
}

func TestChunks(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, wire.MaxChunk, wire.MaxChunk + 1, 2*wire.MaxChunk + 3} {
		p := filepath.Join(dir, "f")
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i)
		}
		os.WriteFile(p, data, 0o600)
		dst := t.TempDir()
		n, err := chunks("m", file{kind: "image", abs: p, rel: "f"}, func(c *wire.FileChunk) error {
			if len(c.Data) > wire.MaxChunk {
				t.Fatalf("chunk of %d bytes", len(c.Data))
			}
			return writeChunk(dst, c)
		})
		if err != nil || n != int64(size) {
			t.Fatalf("size %d: sent %d, %v", size, n, err)
		}
		got, _ := os.ReadFile(filepath.Join(dst, "f"))
		if string(got) != string(data) {
			t.Fatalf("size %d: copy differs", size)
		}
	}
}

// FuzzWriteChunk: whatever a peer sends, a chunk that passes wire's checks
// never writes outside its root, even with symlinks planted in the root.
func FuzzWriteChunk(f *testing.F) {
	for _, p := range []string{"core.img", "a/b/c", "escape/x", "link.img", "../x", "/etc/x", "a/../../x", ".", "a//b", "escape"} {
		f.Add(p, int64(0), []byte("data"), uint32(0), true)
	}
	f.Fuzz(func(t *testing.T, path string, off int64, data []byte, mode uint32, last bool) {
		if off > 1<<20 || len(data) > 4096 {
			return
		}
		cmd := wire.Command{V: wire.Version, Op: wire.OpMigrateReceive, Chunk: &wire.FileChunk{
			Migration: "m", Kind: "image", Path: path, Offset: off, Data: data, Mode: mode, Last: last,
		}}
		dec, err := wire.DecodeCommand(wire.Encode(cmd))
		if err != nil {
			return
		}
		base := t.TempDir()
		root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
		os.MkdirAll(root, 0o700)
		os.MkdirAll(outside, 0o700)
		os.Symlink(outside, filepath.Join(root, "escape"))
		os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "link.img"))
		writeChunk(root, dec.Chunk) // may fail; must not escape
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && p != base && p != root && p != outside && !strings.HasPrefix(p, root+"/") {
				t.Fatalf("chunk path %q wrote %s, outside the root", path, p)
			}
			return nil
		})
		if ents, _ := os.ReadDir(outside); len(ents) > 0 {
			t.Fatalf("chunk path %q wrote into the symlinked dir: %v", path, ents)
		}
	})
}
