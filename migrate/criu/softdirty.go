package criu

import (
	"encoding/binary"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// softDirtyWorks checks the kernel's soft-dirty tracking the way `criu check
// --feature mem_dirty_track` does: clear the soft-dirty bits of this process,
// dirty a page, and read its pagemap entry. CRIU's RPC feature check answers
// mem_track from a kernel-data probe that says yes on kernels where the
// real check (and pre-dump --track-mem) fails, so Features asks both.
//
// Clearing the bits makes this process's next writes to each page take a
// minor fault; it is done once per Client.
func softDirtyWorks() bool {
	const softDirtyBit = 1 << 55
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false
	}
	defer unix.Munmap(mem)
	mem[0] = 1 // populate
	if err := os.WriteFile("/proc/self/clear_refs", []byte("4"), 0); err != nil {
		return false
	}
	mem[0] = 2 // dirty it again: tracking must see this
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return false
	}
	defer f.Close()
	var entry [8]byte
	addr := uintptr(unsafe.Pointer(&mem[0]))
	if _, err := f.ReadAt(entry[:], int64(addr/uintptr(page))*8); err != nil {
		return false
	}
	return binary.LittleEndian.Uint64(entry[:])&softDirtyBit != 0
}
