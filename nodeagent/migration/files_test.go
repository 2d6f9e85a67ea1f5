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

// TestTreeCopyKeepsDirectoryModes: a workdir copied with treeFiles, chunks
// and writeChunk has the same directories (empty ones too) and the same
// modes, sticky bit included: CRIU refuses to restore a process whose
// working directory has another mode than at the dump.
func TestTreeCopyKeepsDirectoryModes(t *testing.T) {
	src, dst := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "work")
	for _, d := range []string{"sub/deeper", "empty"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "data"), []byte("counted"), 0o640); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		".": 0o777 | os.ModeSticky, "sub": 0o750 | os.ModeSetgid, "sub/deeper": 0o700, "empty": 0o711, "sub/data": 0o640,
	}
	for rel, m := range want {
		if err := os.Chmod(filepath.Join(src, rel), m); err != nil {
			t.Fatal(err)
		}
	}
	files, err := treeFiles("workdir", src, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := chunks("m", f, func(c *wire.FileChunk) error { return writeChunk(dst, c) }); err != nil {
			t.Fatalf("%s: %v", f.rel, err)
		}
	}
	for rel, m := range want {
		fi, err := os.Stat(filepath.Join(dst, rel))
		if err != nil {
			t.Fatalf("%s not copied: %v", rel, err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeSticky | os.ModeSetgid | os.ModeSetuid); got != m {
			t.Errorf("%s has mode %v, want %v", rel, got, m)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "sub", "data")); string(b) != "counted" {
		t.Errorf("sub/data = %q", b)
	}
}

func TestWriteDirChunkDoesNotFollowSymlinks(t *testing.T) {
	root, outside := filepath.Join(t.TempDir(), "root"), t.TempDir()
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"escape", "escape/sub"} {
		if err := writeChunk(root, &wire.FileChunk{Migration: "m", Kind: "workdir", Path: p, Mode: 0o777, Dir: true, Last: true}); err == nil {
			t.Errorf("dir chunk %q through a symlink succeeded", p)
		}
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o700 {
		t.Errorf("the symlink's target was chmodded to %v", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(outside); len(ents) > 0 {
		t.Errorf("a directory was made through the symlink: %v", ents)
	}
}

// FuzzWriteChunk: whatever a peer sends, a chunk that passes wire's checks
// never writes outside its root, even with symlinks planted in the root.
func FuzzWriteChunk(f *testing.F) {
	for _, p := range []string{"core.img", "a/b/c", "escape/x", "link.img", "../x", "/etc/x", "a/../../x", ".", "a//b", "escape"} {
		f.Add(p, int64(0), []byte("data"), uint32(0), true, false)
		f.Add(p, int64(0), []byte(nil), uint32(0o7777), true, true)
	}
	f.Fuzz(func(t *testing.T, path string, off int64, data []byte, mode uint32, last, dir bool) {
		kind := "image"
		if dir {
			kind = "workdir" // wire takes directory chunks for the workdir only
		}
		if off > 1<<20 || len(data) > 4096 {
			return
		}
		cmd := wire.Command{V: wire.Version, Op: wire.OpMigrateReceive, Chunk: &wire.FileChunk{
			Migration: "m", Kind: kind, Path: path, Offset: off, Data: data, Mode: mode, Last: last, Dir: dir,
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
		if fi, err := os.Stat(outside); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("chunk path %q changed the symlinked dir's mode: %v %v", path, fi.Mode(), err)
		}
	})
}
