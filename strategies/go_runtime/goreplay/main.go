// goreplay replays an alloclab trace on the real Go runtime: the go-runtime
// strategy (strategies/go_runtime/__init__.py) builds and runs it.
//
//	goreplay -trace FILE [-mode serial|threads] [-reps N] [-warmup OPS] [-gogc N] [-check]
//
// Input: the trace in the binary form strategies/go_runtime writes
// (little-endian): a 64-byte header ("ALCGOTR2", u32 version 2, u32 procs,
// u64 ops, u64 slots, u64 objects, 24 zero bytes), then the columns p int16,
// op int8, kind int8, size int32, slot int32, obj int64, each starting on an
// 8-byte boundary. slot is the object's index in the slot table: the writer
// hands a slot out at the object's alloc and takes it back at its free, so
// "slots" is the trace's peak live object count, not its object count (in
// threads mode a slot goes back to the freeing P's list, see worker). obj is
// the trace's object id: only id checks and cross-P publication read it.
//
// Why mmap, not streaming: the columns are the program's input, not its
// memory. The pacer sets the heap goal from the marked heap plus stack and
// globals scan work (gcControllerState.commit in src/runtime/mgcpacer.go);
// a mapping made with syscall.Mmap is none of these (not from mheap, not a
// global, not a stack), so it neither raises the goal nor is scanned, and the
// heap figures (src/runtime/metrics.go, mstats.go) do not count it. A
// streamed reader would do the same with a bounded buffer, but threads mode
// needs random access (each P reads its own ops) and the page cache holds
// the file anyway; mmap costs no copy and keeps serial and threads alike.
//
// Replay. An object is a Go allocation of the op's size held in the slot
// table (slots[slot], an unsafe.Pointer to its first byte, which keeps the
// whole object alive); a free drops the reference and the GC reclaims the
// object later, as in a Go program. The table is the program's own roots: it
// must be Go-visible memory (the GC has to see the pointers, or it would free
// live objects), so it is a []unsafe.Pointer on the Go heap, 8 B x the peak
// live objects, scanned every cycle and counted in the heap goal, as a real
// program's references to its live objects would be. Kinds: 0 (heap,
// pointerful) is make([]unsafe.Pointer, ceil(size/8)), a scanned object whose
// first word is set to &slots[slot]; 1 (noscan) is make([]byte, size) with
// the object id in the first min(size, 8) bytes (as the executor does). Go
// zeroes every allocation; that is part of its cost here. 2 (stack): a real
// goroutine stack. From 2 KiB (Go's smallest stack) a stack object is a
// goroutine that recurses until its stack, grown by Go's copying, is the
// traced size rounded up to a power of two, then parks on a channel; the
// slot holds its holder, and the free wakes it, so it returns and exits and
// its stack goes back to the runtime (see spawn). So stack memory is Go's
// StackInuse, outside the heap goal's heapLive, as the go model's stack pools
// are. A stack object under 2 KiB is the trace's G descriptor: the goroutine
// brings its own G (newproc), so it is not allocated again. Every goroutine
// still parked at the end of a rep is released and the goroutine count
// checked (goroutines_leaked in the output: 0).
//
// Modes. serial: one goroutine replays all ops in logical order with
// GOMAXPROCS=1, so the collector's work is charged to the same thread (like
// every serial alloclab cell, one CPU). threads: one goroutine per P with
// GOMAXPROCS=procs; a free of an object another P allocated spins (then
// runtime.Gosched) until that P has published it in the slot table (atomic
// pointer). The op with the smallest logical time never waits, so no deadlock.
//
// Repetitions. One untimed warm-up on the first -warmup ops, then each rep is
// a fresh replay of the whole trace. Its baseline is read after loading:
// the trace is mapped, the slot table allocated, the objects still live
// from the last replay dropped, and runtime.GC() + debug.FreeOSMemory() run,
// so earlier garbage (the warm-up's, the last rep's) is neither in the
// baseline nor in the rep's figures. During the replay the heap figures are
// sampled through runtime/metrics (no stop-the-world, unlike
// runtime.ReadMemStats) every SampleEvery ops of each goroutine and once at
// the end; the fields map to runtime.MemStats as:
//
//	HeapAlloc   = /memory/classes/heap/objects
//	HeapInuse   = objects + /memory/classes/heap/unused
//	HeapSys     = HeapInuse + /memory/classes/heap/free + /memory/classes/heap/released
//	HeapHeld    = HeapSys - HeapReleased (heap memory the OS really backs)
//	StackInuse  = /memory/classes/heap/stacks (stack spans, free cached stacks included)
//	InUse       = HeapInuse + StackInuse (the go model's peak in-use: its spans)
//	Held        = HeapHeld + StackInuse (the go model's peak held: what it maps)
//	Sys         = /memory/classes/total
//	NumGC       = /gc/cycles/total
//	TinyAllocs  = /gc/heap/tiny/allocs:objects
//
// Allocations per size class: runtime.ReadMemStats (it flushes every
// mcache first, see readmemstats_m in src/runtime/mstats.go, so the counts
// are exact) at the baseline and, after the timed replay, once more after a
// runtime.GC() that sweeps everything the rep let go (frees are counted at
// sweep); the rep reports the BySize deltas. BySize covers Go's size classes
// up to BySize[60].Size; an alloc of a noscan object under 16 B goes to the
// tiny allocator (src/runtime/malloc.go, maxTinySize): it either fits in the
// current 16-B block (TinyAllocs) or takes a new block (a 16-B class
// malloc), so BySize Mallocs + TinyAllocs = the allocations up to
// BySize[60].Size, plus goreplay's own few (a sampler, goroutines).
//
// Latency (-sample N): the reps are latency reps; each times 1 op in N (a
// Weyl sequence on the op's index, as the harness's kernels do) with Go's
// monotonic clock, into harness/latency.py's log-linear histogram in ns, and
// tags an op "gc" when a GC cycle was in progress at its start or end. The
// throughput reps (N = 0) run a loop without the clock (serialTimed vs
// serial; threads mode: one nil check per op).
//
// Timeline (-timeline K): the reps are probe reps; a row every K ops (op 0
// included) and one at the end of the stream, as the harness's kernels write
// theirs (harness/timeline.py): held and in-use bytes over the rep's
// baseline, GC cycles since it, and the pacer's heap goal, read through
// runtime/metrics into rows kept off the Go heap. A row's op is the trace's
// index of the next op (ops done before it). Threads mode: each goroutine
// writes a row every K ops of its own stream, with its own reader, and the
// last row is written once every goroutine is done; the figures are the
// process's, so the rows need no summing, only sorting by op. The trace's
// live bytes at each row are the harness's to add (it has the trace).
//
// Output: one JSON object on stdout with each rep's wall time (the replay
// only; in serial mode the sampling time is subtracted, in threads mode it is
// in, ~1 us per 4096 ops per goroutine), per-goroutine times, the peaks and
// baselines, GC cycles, allocations per size class and id-check errors. Bad
// input: one line on stderr, exit 2.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// gcphase is the runtime's GC phase word (src/runtime/mgc.go: _GCoff = 0, _GCmark,
// _GCmarktermination): a plain load, so a timed op can say whether it ran while a
// cycle was in progress without a runtime/metrics read (microseconds) per op.
//
//go:linkname gcphase runtime.gcphase
var gcphase uint32

const (
	magic       = "ALCGOTR2"
	version     = 2
	headerSize  = 64
	SampleEvery = 4096
	maxSize     = 1 << 30
)

type trace struct {
	procs, n, nslots, nobj int
	p                      []int16
	op                     []int8
	kind                   []int8
	size                   []int32
	slot                   []int32
	obj                    []int64
}

func align8(x int) int { return (x + 7) &^ 7 }

func load(path string) (*trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < headerSize {
		return nil, fmt.Errorf("%s: shorter than the %d-byte header", path, headerSize)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %v", path, err)
	}
	if string(data[:8]) != magic {
		return nil, fmt.Errorf("%s: not a goreplay trace (bad magic)", path)
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != version {
		return nil, fmt.Errorf("%s: trace version %d, expected %d", path, v, version)
	}
	t := &trace{
		procs:  int(binary.LittleEndian.Uint32(data[12:])),
		n:      int(binary.LittleEndian.Uint64(data[16:])),
		nslots: int(binary.LittleEndian.Uint64(data[24:])),
		nobj:   int(binary.LittleEndian.Uint64(data[32:])),
	}
	if t.procs < 1 || t.procs > 1024 || t.n < 0 || t.nobj < 0 || t.n > 1<<40 || t.nobj > 1<<40 ||
		t.nslots < 0 || t.nslots > t.nobj {
		return nil, fmt.Errorf("%s: bad header (procs %d, ops %d, slots %d, objects %d)",
			path, t.procs, t.n, t.nslots, t.nobj)
	}
	off := headerSize
	offP := off
	off = align8(off + 2*t.n)
	offOp := off
	off = align8(off + t.n)
	offKind := off
	off = align8(off + t.n)
	offSize := off
	off = align8(off + 4*t.n)
	offSlot := off
	off = align8(off + 4*t.n)
	offObj := off
	off += 8 * t.n
	if off > len(data) {
		return nil, fmt.Errorf("%s: truncated (%d bytes, the header promises %d)", path, len(data), off)
	}
	if t.n > 0 {
		t.p = unsafe.Slice((*int16)(unsafe.Pointer(&data[offP])), t.n)
		t.op = unsafe.Slice((*int8)(unsafe.Pointer(&data[offOp])), t.n)
		t.kind = unsafe.Slice((*int8)(unsafe.Pointer(&data[offKind])), t.n)
		t.size = unsafe.Slice((*int32)(unsafe.Pointer(&data[offSize])), t.n)
		t.slot = unsafe.Slice((*int32)(unsafe.Pointer(&data[offSlot])), t.n)
		t.obj = unsafe.Slice((*int64)(unsafe.Pointer(&data[offObj])), t.n)
	}
	for i := 0; i < t.n; i++ {
		if int(t.p[i]) < 0 || int(t.p[i]) >= t.procs || t.obj[i] < 0 || int(t.obj[i]) >= t.nobj ||
			t.size[i] <= 0 || t.size[i] > maxSize || t.op[i] < 0 || t.op[i] > 1 ||
			t.slot[i] < 0 || int(t.slot[i]) >= t.nslots {
			return nil, fmt.Errorf("%s: op %d out of range (p %d, op %d, size %d, slot %d, obj %d)",
				path, i, t.p[i], t.op[i], t.size[i], t.slot[i], t.obj[i])
		}
	}
	return t, nil
}

// offHeap maps n bytes outside the Go heap (anonymous mmap): memory that does
// not count in the figures nor raise the heap goal. Only for data without Go
// pointers, which the GC would not see there.
func offHeap(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		fail(fmt.Errorf("mmap %d bytes: %v", n, err))
	}
	return b
}

// offHeapInt32 is an index list off the Go heap.
func offHeapInt32(n int) []int32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&offHeap(4 * n)[0])), n)
}

// offHeapInt64 is the owner list of threads mode, off the Go heap.
func offHeapInt64(n int) []int64 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(&offHeap(8 * n)[0])), n)
}

// ---------------------------------------------------------------- memory figures

var metricNames = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/total:bytes",
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/tiny/allocs:objects",
	"/memory/classes/heap/stacks:bytes",
	"/gc/heap/goal:bytes",
}

// figures: InUse and Held are what the go model reports as peak in-use and
// peak held (its spans for objects and for stacks): InUse = HeapInuse +
// StackInuse, Held = HeapHeld + StackInuse (stack spans come from the same
// page heap, and its free pages are in HeapHeld once, whoever freed them).
type figures struct {
	HeapAlloc, HeapInuse, HeapSys, HeapHeld, Sys, NumGC, TinyAllocs uint64
	StackInuse, InUse, Held                                         uint64
	HeapGoal                                                        uint64 // the pacer's goal now (not a peak)
}

type sampler struct {
	samples []metrics.Sample
	peak    figures
	count   int
	spent   time.Duration
}

func newSampler() *sampler {
	s := &sampler{samples: make([]metrics.Sample, len(metricNames))}
	for i, n := range metricNames {
		s.samples[i].Name = n
	}
	return s
}

func (s *sampler) read() figures {
	metrics.Read(s.samples)
	v := func(i int) uint64 {
		if s.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s.samples[i].Value.Uint64()
	}
	objects, unused, free, released, stacks := v(0), v(1), v(2), v(3), v(7)
	return figures{
		HeapAlloc: objects, HeapInuse: objects + unused, HeapSys: objects + unused + free + released,
		HeapHeld: objects + unused + free, Sys: v(4), NumGC: v(5), TinyAllocs: v(6),
		StackInuse: stacks, InUse: objects + unused + stacks, Held: objects + unused + free + stacks,
		HeapGoal: v(8),
	}
}

func (s *sampler) sample() {
	t0 := time.Now()
	s.peak.raise(s.read())
	s.count++
	s.spent += time.Since(t0)
}

func (s *sampler) merge(o *sampler) {
	s.peak.raise(o.peak)
	s.count += o.count
}

// raise takes each figure's maximum (a peak of InUse is the peak of the sum,
// read at one instant, not the sum of two peaks).
func (p *figures) raise(f figures) {
	p.HeapAlloc = max64(p.HeapAlloc, f.HeapAlloc)
	p.HeapInuse = max64(p.HeapInuse, f.HeapInuse)
	p.HeapSys = max64(p.HeapSys, f.HeapSys)
	p.HeapHeld = max64(p.HeapHeld, f.HeapHeld)
	p.Sys = max64(p.Sys, f.Sys)
	p.StackInuse = max64(p.StackInuse, f.StackInuse)
	p.InUse = max64(p.InUse, f.InUse)
	p.Held = max64(p.Held, f.Held)
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// ---------------------------------------------------------------- goroutine stacks

const (
	// stackMin is Go's _StackMin (src/runtime/stack.go): the stack a new
	// goroutine starts on when adaptivestackstart is off, as run_external sets
	// it (Go 1.19 otherwise starts goroutines on the average scanned stack size,
	// which would make every traced 2 KiB stack larger).
	stackMin = 2048
	// stackFrame is the pad of one frame of deepen. What it trades: a bigger
	// frame takes fewer calls to reach a size (cheaper per spawn) but sizes the
	// used stack more coarsely; 256 B is 1/8 of the smallest step that matters
	// (half of a 4 KiB stack).
	stackFrame = 256
	// yieldEvery: a spawn of a 2 KiB stack (no growth: newproc allocated it)
	// and a release (the woken goroutine exits when it next runs) leave a
	// goroutine runnable; the replay yields once that many are pending, so
	// they run together. What it trades: a larger batch costs fewer
	// Gosched calls per op but leaves up to that many freed stacks unfreed
	// (and new ones not yet parked) at a time; 8 is at most 8 stacks (16 KiB
	// and up) late, a few ns per op at most.
	yieldEvery = 8
)

// holder is a traced stack object: a goroutine parked on wake, deep enough
// that its stack is the traced size. Holders are reused (a P's pool), so a
// spawn allocates nothing on the heap but what the runtime itself does (its
// G when no free one exists, as newproc does for any goroutine).
type holder struct {
	wake  chan struct{}
	obj   int64
	depth int
}

// spawnQ hands a new goroutine its holder. A go statement with arguments
// (go deepen(d, ch)) heap-allocates a closure for them since Go 1.17's
// register ABI (24 B a spawn, garbage the traced program would not make), so
// goroutines start with none and take a holder here: any holder will do,
// since a holder's goroutine is whichever one parks on its wake.
var spawnQ = make(chan *holder, 1024)

func park() {
	h := <-spawnQ
	deepen(h.depth, h.wake)
}

// stackDepth is the number of deepen frames that leave a goroutine on a stack
// of the traced size rounded up to a power of two, T (Go's stacks are powers
// of two): Go doubles a stack when a call would leave less than the stack
// guard (928 B on linux/amd64) free, so using about T/2 grows a T/2 stack to T
// and leaves T's guard clear (T >= 4 KiB); a 2 KiB stack needs no frames.
func stackDepth(size int) int {
	t := stackMin
	for t < size {
		t <<= 1
	}
	if t == stackMin {
		return 0
	}
	return t / 2 / stackFrame
}

// deepen recurses depth times, each frame holding a pad the compiler must keep
// (it is indexed by a variable and read after the call), then parks on wake;
// a send on wake lets it return, and the goroutine exits: its stack goes back
// to the runtime (stackfree, or kept with its G on the P's free-G list when it
// is the starting size, gfput in src/runtime/proc.go).
//
//go:noinline
func deepen(depth int, wake chan struct{}) byte {
	var pad [stackFrame]byte
	pad[depth%stackFrame] = byte(depth)
	if depth > 0 {
		pad[1] = deepen(depth-1, wake)
	} else {
		<-wake
	}
	return pad[(depth*7)%stackFrame]
}

// spawn starts op i's goroutine. newproc gives it a 2 KiB stack at once; one
// that must grow yields now so that it grows and parks (the stack is the
// traced size from its alloc on, as the model's is); one that need not runs
// with the next batch (yieldEvery).
func (r *replayer) spawn(i, p int) unsafe.Pointer {
	pool := &r.pools[p]
	var h *holder
	if n := len(*pool); n > 0 {
		h = (*pool)[n-1]
		*pool = (*pool)[:n-1]
	} else {
		h = &holder{wake: make(chan struct{})}
	}
	h.obj, h.depth = r.t.obj[i], stackDepth(int(r.t.size[i]))
	spawnQ <- h
	go park()
	r.pending(p, h.depth > 0)
	r.isStack[r.t.slot[i]] = 1
	if live := atomic.AddInt64(&r.parked, 1); live > atomic.LoadInt64(&r.parkedPeak) {
		atomic.StoreInt64(&r.parkedPeak, live) // racy max in threads mode: a figure, not a check
	}
	return unsafe.Pointer(h)
}

// release wakes the goroutine of a freed stack object; it exits (its stack
// freed) with the next batch of runnable goroutines (yieldEvery).
func (r *replayer) release(slot int32, ptr unsafe.Pointer, p int) {
	r.isStack[slot] = 0
	h := (*holder)(ptr)
	h.wake <- struct{}{}
	r.pending(p, false)
	r.pools[p] = append(r.pools[p], h)
	atomic.AddInt64(&r.parked, -1)
}

// pending counts one more goroutine made runnable on P p and yields, so that
// they all run, when now is set or yieldEvery are pending. Woken and new
// goroutines wait in p's run queue (runnext, then the local queue), which
// the scheduler serves before it comes back to a goroutine that yielded
// (Gosched puts it on the global queue).
func (r *replayer) pending(p int, now bool) {
	r.runnable[p]++
	if now || r.runnable[p] >= yieldEvery {
		r.runnable[p] = 0
		runtime.Gosched()
	}
}

// releaseAll wakes every goroutine still parked (the stack objects live at the
// trace's end) and waits until the goroutine count is back to the program's
// own; returns (released, still running): the second is a leak, 0 when sound.
func (r *replayer) releaseAll() (int64, int64) {
	var n int64
	for s := range r.slots {
		if r.isStack[s] != 0 {
			ptr := r.slots[s]
			r.slots[s] = nil
			r.release(int32(s), ptr, 0)
			n++
		}
	}
	for p := range r.runnable {
		r.runnable[p] = 0
	}
	for k := 0; k < 1000 && runtime.NumGoroutine() > r.baseGoroutines; k++ {
		runtime.Gosched()
		if k >= 100 {
			time.Sleep(time.Millisecond)
		}
	}
	return n, int64(runtime.NumGoroutine() - r.baseGoroutines)
}

// ---------------------------------------------------------------- memory timeline

const tlCols = 5 // op, held, in-use, GC cycles (over the baseline), heap goal

// timeline is a probe rep's memory rows, off the Go heap so that they are not
// in the figures they record.
type timeline struct {
	every int
	rows  []int64 // [row][tlCols]
	n     int
	s     *sampler
	base  figures
}

func newTimeline(every, ops int) *timeline {
	n := (ops/every + 2) * tlCols
	return &timeline{every: every, rows: unsafe.Slice((*int64)(unsafe.Pointer(&offHeap(8 * n)[0])), n),
		s: newSampler()}
}

// add writes the row of op (ops done so far).
func (t *timeline) add(op int) {
	if (t.n+1)*tlCols > len(t.rows) {
		return
	}
	f := t.s.read()
	row := t.rows[t.n*tlCols : (t.n+1)*tlCols]
	row[0], row[1], row[2] = int64(op), int64(f.Held)-int64(t.base.Held), int64(f.InUse)-int64(t.base.InUse)
	row[3], row[4] = int64(f.NumGC-t.base.NumGC), int64(f.HeapGoal)
	t.n++
}

func (t *timeline) out() [][tlCols]int64 {
	out := make([][tlCols]int64, t.n)
	for k := range out {
		copy(out[k][:], t.rows[k*tlCols:(k+1)*tlCols])
	}
	return out
}

// ---------------------------------------------------------------- sampled latency

// The histogram's layout is harness/latency.py's (executor.HIST_*), in ns
// instead of cycles: exact below histSub, then histSub buckets per power of
// two. The parent checks sub_bits and max_msb in the JSON against its own.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histMaxMSB  = 46
	histBuckets = (histMaxMSB - histSubBits + 2) * histSub
	golden      = 0x9E3779B97F4A7C15
)

// latCauses: what a timed op can be tagged with from outside the runtime
// (harness/latency.py's CAUSES names). "gc": the op started or ended while a
// GC cycle was in progress (gcphase != _GCoff), so it may have paid a mark
// assist, write barriers, or the start or end of the cycle itself.
var latCauses = []string{"fast", "gc"}

// latency is one goroutine's sampled-op histogram (off the Go heap).
type latency struct {
	every, below uint64
	hist         []int64 // [op][cause][bucket]
	max          [2]int64
	timed        [2]int64
}

// origin: the monotonic clock's zero (time.Since reads only the monotonic
// clock: one vDSO clock_gettime).
var origin = time.Now()

func newLatency(every int) *latency {
	n := 2 * len(latCauses) * histBuckets
	l := &latency{every: uint64(every),
		hist: unsafe.Slice((*int64)(unsafe.Pointer(&offHeap(8 * n)[0])), n)}
	if e := uint64(every); e > 1 {
		// floor(2^64 / every), as executor.Probe's sample_below, without 2^64
		l.below = ^uint64(0) / e
		if ^uint64(0)%e == e-1 {
			l.below++
		}
	}
	return l
}

// sampled: 1 op in every by a Weyl sequence on its index (executor._sampled):
// the same ops each run, not aliased with the workload's periods.
func (l *latency) sampled(k int) bool {
	return l.every <= 1 || uint64(k)*golden < l.below
}

func bucket(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	m := 63 - bits.LeadingZeros64(uint64(v))
	if m > histMaxMSB {
		return histBuckets - 1
	}
	shift := m - histSubBits
	return (shift+1)*histSub + int(v>>shift) - histSub
}

func (l *latency) record(op int8, dt time.Duration, phase uint32) {
	cause := 0
	if phase != 0 {
		cause = 1
	}
	l.hist[(int(op)*len(latCauses)+cause)*histBuckets+bucket(int64(dt))]++
	if int64(dt) > l.max[op] {
		l.max[op] = int64(dt)
	}
	l.timed[op]++
}

// latOut is a rep's merged histogram: nonzero buckets as [op, cause, bucket, count].
type latOut struct {
	Every   int        `json:"every"`
	SubBits int        `json:"sub_bits"`
	MaxMSB  int        `json:"max_msb"`
	Causes  []string   `json:"causes"`
	Buckets [][4]int64 `json:"buckets"`
	MaxNs   [2]int64   `json:"max_ns"`
	Timed   [2]int64   `json:"timed"`
}

func mergeLatency(ls []*latency) *latOut {
	out := &latOut{Every: int(ls[0].every), SubBits: histSubBits, MaxMSB: histMaxMSB, Causes: latCauses}
	for j := range ls[0].hist {
		var c int64
		for _, l := range ls {
			c += l.hist[j]
		}
		if c != 0 {
			b := j % histBuckets
			oc := j / histBuckets
			out.Buckets = append(out.Buckets, [4]int64{int64(oc / len(latCauses)), int64(oc % len(latCauses)), int64(b), c})
		}
	}
	for _, l := range ls {
		for op := 0; op < 2; op++ {
			out.MaxNs[op] = max(out.MaxNs[op], l.max[op])
			out.Timed[op] += l.timed[op]
		}
	}
	return out
}

func max(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// clockFigures measures the clock a timed op reads: the cost of one read and
// the smallest step two consecutive reads show (its effective resolution).
func clockFigures() map[string]float64 {
	const n = 200_000
	t0 := time.Since(origin)
	for i := 0; i < n; i++ {
		clockSink += time.Since(origin)
	}
	cost := float64(time.Since(origin)-t0) / n
	step := time.Duration(1 << 62)
	prev := time.Since(origin)
	for i := 0; i < n; i++ {
		c := time.Since(origin)
		if c != prev && c-prev < step {
			step = c - prev
		}
		prev = c
	}
	return map[string]float64{"read_ns": cost, "step_ns": float64(step)}
}

var clockSink time.Duration // the reads' sum, so the loop is not dropped

// ---------------------------------------------------------------- replay

type replayer struct {
	t     *trace
	slots []unsafe.Pointer
	// owner (threads mode only, off the Go heap): obj+1 of the object whose
	// pointer slots[s] holds, 0 = none yet. A slot is reused, so a free on
	// one P must wait for its own object, not for any non-nil pointer.
	owner []int64
	// isStack (off the Go heap): 1 while slots[s] is a parked goroutine's holder
	isStack            []byte
	pools              [][]*holder // free holders by P
	runnable           []int64     // off the Go heap: goroutines made runnable by P p since it last yielded
	parked, parkedPeak int64
	baseGoroutines     int
	check              bool
	sample             int // time 1 op in sample in timed reps (0: none)
	timeline           int // a memory row every timeline ops in timed reps (threads: per P; 0: none)
	errCount           int64
	errOnce            *sync.Once
	firstErr           string
}

// newObject allocates op i's object on P p. Kind stack: at least stackMin, a
// parked goroutine of that stack (spawn); under it, a G descriptor, which the
// real goroutine brings with it (newproc's G), so nothing is allocated.
func (r *replayer) newObject(i, p int) unsafe.Pointer {
	size := int(r.t.size[i])
	obj := r.t.obj[i]
	switch r.t.kind[i] {
	case 0:
		s := make([]unsafe.Pointer, (size+7)/8)
		s[0] = unsafe.Pointer(&r.slots[r.t.slot[i]])
		return unsafe.Pointer(&s[0])
	case 2:
		if size < stackMin {
			return nil
		}
		return r.spawn(i, p)
	}
	b := make([]byte, size)
	if size >= 8 {
		*(*int64)(unsafe.Pointer(&b[0])) = obj
	} else {
		for j := 0; j < size; j++ {
			b[j] = byte(obj >> (8 * j))
		}
	}
	return unsafe.Pointer(&b[0])
}

func (r *replayer) verify(i int, ptr unsafe.Pointer) {
	obj := r.t.obj[i]
	ok := true
	switch {
	case r.t.kind[i] == 0:
		ok = *(*unsafe.Pointer)(ptr) == unsafe.Pointer(&r.slots[r.t.slot[i]])
	case r.t.kind[i] == 2 && r.t.size[i] < stackMin:
		ok = ptr == nil
	case r.t.kind[i] == 2:
		ok = r.isStack[r.t.slot[i]] != 0 && (*holder)(ptr).obj == obj
	default:
		size := int(r.t.size[i])
		b := unsafe.Slice((*byte)(ptr), size)
		for j := 0; j < size && j < 8; j++ {
			if b[j] != byte(obj>>(8*j)) {
				ok = false
			}
		}
	}
	if !ok {
		atomic.AddInt64(&r.errCount, 1)
		r.errOnce.Do(func() {
			r.firstErr = fmt.Sprintf("object id overwritten while live at op %d: free of object %d, %d B on P%d",
				i, obj, r.t.size[i], r.t.p[i])
		})
	}
}

// serialOp replays op i (serial mode: one goroutine, P 0).
func (r *replayer) serialOp(i int) {
	t := r.t
	slot := t.slot[i]
	if t.op[i] == 0 {
		r.slots[slot] = r.newObject(i, 0)
		return
	}
	ptr := r.slots[slot]
	if r.check {
		r.verify(i, ptr)
	}
	r.slots[slot] = nil
	if r.isStack[slot] != 0 {
		r.release(slot, ptr, 0)
	}
}

// serial replays ops [0, stop) in logical order on this goroutine.
func (r *replayer) serial(stop int, s *sampler) {
	for i := 0; i < stop; i++ {
		r.serialOp(i)
		if s != nil && i%SampleEvery == SampleEvery-1 {
			s.sample()
		}
	}
}

// serialTimed is serial with 1 op in l.every timed (l may be nil) and a
// timeline row every tl.every ops (tl may be nil): a loop of its own, so the
// probe reps' clock reads and branches never reach the throughput reps.
func (r *replayer) serialTimed(stop int, s *sampler, l *latency, tl *timeline) {
	if tl != nil {
		tl.add(0)
	}
	for i := 0; i < stop; i++ {
		if l != nil && l.sampled(i) {
			phase := atomic.LoadUint32(&gcphase)
			t0 := time.Since(origin)
			r.serialOp(i)
			dt := time.Since(origin) - t0
			l.record(r.t.op[i], dt, phase|atomic.LoadUint32(&gcphase))
		} else {
			r.serialOp(i)
		}
		if s != nil && i%SampleEvery == SampleEvery-1 {
			s.sample()
		}
		if tl != nil && (i+1)%tl.every == 0 && i+1 < stop {
			tl.add(i + 1)
		}
	}
	if tl != nil && stop > 0 {
		tl.add(stop)
	}
}

// workerOp replays op i on P p (threads mode). Slots are safe to share
// between Ps because the writer of the trace gives a freed slot back to the
// list of the P that freed it: only that P hands it out again, after its own
// free in its own program order, and any other P that frees the slot's next
// object waits until owner names that object.
func (r *replayer) workerOp(i, p int) {
	t := r.t
	slot := t.slot[i]
	if t.op[i] == 0 {
		atomic.StorePointer(&r.slots[slot], r.newObject(i, p))
		atomic.StoreInt64(&r.owner[slot], t.obj[i]+1)
		return
	}
	want := t.obj[i] + 1
	for spins := 0; atomic.LoadInt64(&r.owner[slot]) != want; spins++ {
		// allocated on another P that has not got there yet
		if spins > 16 {
			runtime.Gosched()
		}
	}
	ptr := atomic.LoadPointer(&r.slots[slot])
	if r.check {
		r.verify(i, ptr)
	}
	atomic.StorePointer(&r.slots[slot], nil)
	if r.isStack[slot] != 0 {
		r.release(slot, ptr, p)
	}
}

// worker replays one P's ops (indexes into the trace, in logical order),
// timing 1 op in l.every of its own stream when l is not nil and writing a
// timeline row before every tl.every-th when tl is not nil.
func (r *replayer) worker(idx []int32, p int, s *sampler, l *latency, tl *timeline) {
	for k, i32 := range idx {
		i := int(i32)
		if tl != nil && k%tl.every == 0 {
			tl.add(i)
		}
		if l != nil && l.sampled(k) {
			phase := atomic.LoadUint32(&gcphase)
			t0 := time.Since(origin)
			r.workerOp(i, p)
			dt := time.Since(origin) - t0
			l.record(r.t.op[i], dt, phase|atomic.LoadUint32(&gcphase))
		} else {
			r.workerOp(i, p)
		}
		if s != nil && k%SampleEvery == SampleEvery-1 {
			s.sample()
		}
	}
}

func (r *replayer) reset() {
	for i := range r.slots {
		r.slots[i] = nil
	}
	for i := range r.owner {
		r.owner[i] = 0
	}
	runtime.GC()
	debug.FreeOSMemory()
}

// classCount is one size class's allocations during a rep (MemStats.BySize deltas).
type classCount struct {
	Size    uint32 `json:"size"`
	Mallocs uint64 `json:"mallocs"`
	Frees   uint64 `json:"frees"`
}

type repResult struct {
	Rep         int          `json:"rep"`
	WallNs      int64        `json:"wall_ns"`
	PerPWallNs  []int64      `json:"per_p_wall_ns"`
	SampleNs    int64        `json:"sample_ns"`
	Samples     int          `json:"samples"`
	Allocs      int64        `json:"allocs"`
	Frees       int64        `json:"frees"`
	NumGC       uint64       `json:"num_gc"`
	Peak        figures      `json:"peak"`
	Base        figures      `json:"base"`
	TinyAllocs  uint64       `json:"tiny_allocs"`
	GoMallocs   uint64       `json:"go_mallocs"`
	GoFrees     uint64       `json:"go_frees"`
	BySize      []classCount `json:"by_size"`
	CheckErrors int64        `json:"check_errors"`
	FirstError  string       `json:"first_error,omitempty"`
	// goroutine stacks: parked goroutines at most at once (racy in threads
	// mode), still parked at the trace's end (released after the rep's
	// figures), and goroutines left running after that release (a leak: 0)
	StackGoroutinesPeak int64 `json:"stack_goroutines_peak"`
	StackGoroutinesEnd  int64 `json:"stack_goroutines_end"`
	GoroutinesLeaked    int64 `json:"goroutines_leaked"`
	// the sampled latency histogram (latency reps only, -sample)
	Latency  *latOut         `json:"latency,omitempty"`
	Timeline [][tlCols]int64 `json:"timeline,omitempty"`
}

// memStats: two MemStats, allocated once (each is ~6 KB) so that a rep's
// accounting allocates nothing on the heap between its two reads.
var memStats [2]runtime.MemStats

func (r *replayer) run(mode string, stop int, idx [][]int32, timed bool) repResult {
	r.reset()
	r.errCount, r.firstErr, r.errOnce = 0, "", new(sync.Once)
	r.parked, r.parkedPeak = 0, 0
	var lats []*latency // latency reps: one histogram per goroutine, made before the baseline
	if timed && r.sample > 0 {
		lats = make([]*latency, r.t.procs)
		for p := range lats {
			lats[p] = newLatency(r.sample)
		}
	}
	// timelines: made before both baselines, as the histograms are (their structs and readers are
	// on the Go heap, their rows off it; tls escapes to the heap, captured by the goroutines, and
	// made after ReadMemStats it was an allocation in every rep's per-class counts)
	var tl *timeline    // serial mode
	var tls []*timeline // threads mode: one per goroutine (tls[0] also takes the last row)
	if timed && r.timeline > 0 {
		if mode == "serial" {
			tl = newTimeline(r.timeline, stop)
		} else {
			tls = make([]*timeline, r.t.procs)
			for p := range tls {
				tls[p] = newTimeline(r.timeline, len(idx[p]))
			}
		}
	}
	msBase, msEnd := &memStats[0], &memStats[1]
	if timed {
		runtime.ReadMemStats(msBase)
	}
	base := newSampler().read() // after ReadMemStats: TinyAllocs is exact (see below)
	if tl != nil {
		tl.base = base
	}
	for _, x := range tls {
		x.base = base
	}
	res := repResult{}
	t := r.t
	if mode == "serial" {
		var s *sampler
		if timed {
			s = newSampler()
		}
		t0 := time.Now()
		if lats != nil || tl != nil {
			var l *latency
			if lats != nil {
				l = lats[0]
			}
			r.serialTimed(stop, s, l, tl)
		} else {
			r.serial(stop, s)
		}
		wall := time.Since(t0)
		if s != nil {
			s.sample()
			wall -= s.spent
			res.SampleNs = int64(s.spent)
			res.Samples = s.count
			res.Peak = s.peak
		}
		res.WallNs = int64(wall)
		res.PerPWallNs = []int64{int64(wall)}
	} else {
		procs := t.procs
		samplers := make([]*sampler, procs)
		times := make([]int64, procs)
		var ready, done sync.WaitGroup
		start := make(chan struct{})
		for p := 0; p < procs; p++ {
			if timed {
				samplers[p] = newSampler()
			}
			ready.Add(1)
			done.Add(1)
			go func(p int) {
				defer done.Done()
				ids := idx[p]
				n := 0
				for n < len(ids) && int(ids[n]) < stop {
					n++
				}
				ready.Done()
				<-start
				t0 := time.Now()
				var l *latency
				if lats != nil {
					l = lats[p]
				}
				var tlp *timeline
				if tls != nil {
					tlp = tls[p]
				}
				r.worker(ids[:n], p, samplers[p], l, tlp)
				times[p] = int64(time.Since(t0))
			}(p)
		}
		ready.Wait()
		t0 := time.Now()
		close(start)
		done.Wait()
		res.WallNs = int64(time.Since(t0))
		res.PerPWallNs = times
		if tls != nil {
			tls[0].add(stop)
		}
		if timed {
			all := newSampler()
			all.sample()
			for _, s := range samplers {
				all.merge(s)
				res.SampleNs += int64(s.spent)
			}
			res.Samples = all.count
			res.Peak = all.peak
		}
	}
	end := newSampler().read()
	res.NumGC = end.NumGC - base.NumGC
	res.Base = base
	if timed {
		// after NumGC is read: this cycle sweeps what the rep let go, so that
		// BySize's Frees (counted at sweep) are the rep's, and is not the rep's
		runtime.GC()
		runtime.ReadMemStats(msEnd)
		// the tiny count is per mcache until a flush (mcache.releaseAll in
		// src/runtime/mcache.go): read it right after ReadMemStats flushed them,
		// as the baseline was
		res.TinyAllocs = newSampler().read().TinyAllocs - base.TinyAllocs
		res.GoMallocs = msEnd.Mallocs - msBase.Mallocs
		res.GoFrees = msEnd.Frees - msBase.Frees
		res.BySize = make([]classCount, len(msEnd.BySize))
		for c := range msEnd.BySize {
			res.BySize[c] = classCount{Size: msEnd.BySize[c].Size,
				Mallocs: msEnd.BySize[c].Mallocs - msBase.BySize[c].Mallocs,
				Frees:   msEnd.BySize[c].Frees - msBase.BySize[c].Frees}
		}
	}
	for i := 0; i < stop; i++ {
		if t.op[i] == 0 {
			res.Allocs++
		} else {
			res.Frees++
		}
	}
	res.CheckErrors = atomic.LoadInt64(&r.errCount)
	res.FirstError = r.firstErr
	res.StackGoroutinesPeak = r.parkedPeak
	res.StackGoroutinesEnd, res.GoroutinesLeaked = r.releaseAll()
	if lats != nil {
		res.Latency = mergeLatency(lats)
	}
	if tl != nil {
		res.Timeline = tl.out()
	}
	if tls != nil {
		for _, x := range tls {
			res.Timeline = append(res.Timeline, x.out()...)
		}
		sort.SliceStable(res.Timeline, func(a, b int) bool { return res.Timeline[a][0] < res.Timeline[b][0] })
	}
	return res
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "goreplay: %v\n", err)
	os.Exit(2)
}

func main() {
	path := flag.String("trace", "", "trace file (binary form written by alloclab's go_runtime strategy)")
	mode := flag.String("mode", "serial", "serial or threads")
	reps := flag.Int("reps", 1, "timed repetitions")
	warmup := flag.Int("warmup", 20000, "ops of the untimed warm-up replay")
	gogc := flag.Int("gogc", 100, "GOGC (-1 = off)")
	check := flag.Bool("check", false, "verify each object's id at its free")
	sample := flag.Int("sample", 0, "time 1 op in N in every rep (0 = none; the reps are then latency reps)")
	tlEvery := flag.Int("timeline", 0, "a memory row every N ops in every rep (threads mode: of each P's stream; 0 = none; the reps are then probe reps)")
	flag.Parse()
	if *path == "" {
		fail(errors.New("-trace FILE is required"))
	}
	if *mode != "serial" && *mode != "threads" {
		fail(fmt.Errorf("-mode %q: choose serial or threads", *mode))
	}
	if *sample < 0 {
		fail(fmt.Errorf("-sample %d: 0 or more", *sample))
	}
	if *reps < 1 {
		fail(fmt.Errorf("-reps %d: at least 1", *reps))
	}
	if *tlEvery < 0 {
		fail(fmt.Errorf("-timeline %d: 0 or more", *tlEvery))
	}
	t, err := load(*path)
	if err != nil {
		fail(err)
	}
	gomaxprocs := 1
	if *mode == "threads" {
		gomaxprocs = t.procs
	}
	runtime.GOMAXPROCS(gomaxprocs)
	debug.SetGCPercent(*gogc)

	var idx [][]int32
	if *mode == "threads" {
		counts := make([]int, t.procs)
		for i := 0; i < t.n; i++ {
			counts[t.p[i]]++
		}
		idx = make([][]int32, t.procs)
		for p := range idx {
			idx[p] = offHeapInt32(counts[p])[:0]
		}
		for i := 0; i < t.n; i++ {
			idx[t.p[i]] = append(idx[t.p[i]], int32(i))
		}
	}
	// the program's roots, sized to the peak live objects (see Replay above)
	r := &replayer{t: t, slots: make([]unsafe.Pointer, t.nslots), check: *check, sample: *sample,
		timeline: *tlEvery, isStack: offHeap(int(max(int64(t.nslots), 1)))[:t.nslots]}
	// holders for the peak of stack goroutines (in logical order; threads mode:
	// that many split between the Ps, a P that runs short makes more), made
	// before any baseline so that they are not the replay's allocations
	r.pools = make([][]*holder, t.procs)
	r.runnable = offHeapInt64(t.procs)
	peak := peakStacks(t)
	for p := range r.pools {
		n := peak
		if *mode == "threads" {
			n = (peak + t.procs - 1) / t.procs
		}
		if *mode == "serial" && p > 0 {
			n = 0
		}
		r.pools[p] = make([]*holder, 0, n)
		for k := 0; k < n; k++ {
			r.pools[p] = append(r.pools[p], &holder{wake: make(chan struct{})})
		}
	}
	r.baseGoroutines = runtime.NumGoroutine()
	if *mode == "threads" {
		r.owner = offHeapInt64(t.nslots)
	}
	w := *warmup
	if w > t.n {
		w = t.n
	}
	if w > 0 {
		r.run(*mode, w, idx, false)
	}
	out := struct {
		Version    int         `json:"version"`
		Slots      int         `json:"slots"`
		GoVersion  string      `json:"go_version"`
		Mode       string      `json:"mode"`
		Procs      int         `json:"procs"`
		GOMAXPROCS int         `json:"gomaxprocs"`
		GOGC       int         `json:"gogc"`
		Ops        int         `json:"ops"`
		Objects    int         `json:"objects"`
		Reps       []repResult `json:"reps"`
		NumGCTotal uint32      `json:"num_gc_total"`
		// the clock timed ops read (latency reps only): cost of a read and smallest step, ns
		Clock map[string]float64 `json:"clock,omitempty"`
	}{Version: 2, GoVersion: runtime.Version(), Mode: *mode, Procs: t.procs, GOMAXPROCS: gomaxprocs,
		GOGC: *gogc, Ops: t.n, Objects: t.nobj, Slots: t.nslots}
	if *sample > 0 {
		out.Clock = clockFigures()
	}
	for rep := 0; rep < *reps; rep++ {
		res := r.run(*mode, t.n, idx, true)
		res.Rep = rep
		out.Reps = append(out.Reps, res)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out.NumGCTotal = ms.NumGC
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

// peakStacks is the most stack objects (kind stack, stackMin or more) live at
// once in the trace's logical order: the holders a serial replay needs.
func peakStacks(t *trace) int {
	live, peak := 0, 0
	for i := 0; i < t.n; i++ {
		if t.kind[i] != 2 || t.size[i] < stackMin {
			continue
		}
		if t.op[i] == 0 {
			live++
			if live > peak {
				peak = live
			}
		} else {
			live--
		}
	}
	return peak
}
