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
// first word is set to &slots[slot]; 1 (noscan) and 2 (stack: Go cannot
// allocate a goroutine stack on request, so it stands in as noscan memory)
// are make([]byte, size) with the object id in the first min(size, 8) bytes
// (as the executor does). Go zeroes every allocation; that is part of its
// cost here.
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
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

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
}

type figures struct {
	HeapAlloc, HeapInuse, HeapSys, HeapHeld, Sys, NumGC, TinyAllocs uint64
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
	objects, unused, free, released := v(0), v(1), v(2), v(3)
	return figures{
		HeapAlloc: objects, HeapInuse: objects + unused, HeapSys: objects + unused + free + released,
		HeapHeld: objects + unused + free, Sys: v(4), NumGC: v(5), TinyAllocs: v(6),
	}
}

func (s *sampler) sample() {
	t0 := time.Now()
	f := s.read()
	s.count++
	s.peak.HeapAlloc = max64(s.peak.HeapAlloc, f.HeapAlloc)
	s.peak.HeapInuse = max64(s.peak.HeapInuse, f.HeapInuse)
	s.peak.HeapSys = max64(s.peak.HeapSys, f.HeapSys)
	s.peak.HeapHeld = max64(s.peak.HeapHeld, f.HeapHeld)
	s.peak.Sys = max64(s.peak.Sys, f.Sys)
	s.spent += time.Since(t0)
}

func (s *sampler) merge(o *sampler) {
	s.peak.HeapAlloc = max64(s.peak.HeapAlloc, o.peak.HeapAlloc)
	s.peak.HeapInuse = max64(s.peak.HeapInuse, o.peak.HeapInuse)
	s.peak.HeapSys = max64(s.peak.HeapSys, o.peak.HeapSys)
	s.peak.HeapHeld = max64(s.peak.HeapHeld, o.peak.HeapHeld)
	s.peak.Sys = max64(s.peak.Sys, o.peak.Sys)
	s.count += o.count
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// ---------------------------------------------------------------- replay

type replayer struct {
	t     *trace
	slots []unsafe.Pointer
	// owner (threads mode only, off the Go heap): obj+1 of the object whose
	// pointer slots[s] holds, 0 = none yet. A slot is reused, so a free on
	// one P must wait for its own object, not for any non-nil pointer.
	owner    []int64
	check    bool
	errCount int64
	errOnce  *sync.Once
	firstErr string
}

func (r *replayer) newObject(i int) unsafe.Pointer {
	size := int(r.t.size[i])
	obj := r.t.obj[i]
	if r.t.kind[i] == 0 {
		s := make([]unsafe.Pointer, (size+7)/8)
		s[0] = unsafe.Pointer(&r.slots[r.t.slot[i]])
		return unsafe.Pointer(&s[0])
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
	if r.t.kind[i] == 0 {
		ok = *(*unsafe.Pointer)(ptr) == unsafe.Pointer(&r.slots[r.t.slot[i]])
	} else {
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

// serial replays ops [0, stop) in logical order on this goroutine.
func (r *replayer) serial(stop int, s *sampler) {
	t := r.t
	for i := 0; i < stop; i++ {
		slot := t.slot[i]
		if t.op[i] == 0 {
			r.slots[slot] = r.newObject(i)
		} else {
			if r.check {
				r.verify(i, r.slots[slot])
			}
			r.slots[slot] = nil
		}
		if s != nil && i%SampleEvery == SampleEvery-1 {
			s.sample()
		}
	}
}

// worker replays one P's ops (indexes into the trace, in logical order).
// Slots are safe to share between Ps because the writer of the trace gives a
// freed slot back to the list of the P that freed it: only that P hands it
// out again, after its own free in its own program order, and any other P
// that frees the slot's next object waits until owner names that object.
func (r *replayer) worker(idx []int32, s *sampler) {
	t := r.t
	for k, i32 := range idx {
		i := int(i32)
		slot := t.slot[i]
		if t.op[i] == 0 {
			atomic.StorePointer(&r.slots[slot], r.newObject(i))
			atomic.StoreInt64(&r.owner[slot], t.obj[i]+1)
		} else {
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
}

// memStats: two MemStats, allocated once (each is ~6 KB) so that a rep's
// accounting allocates nothing on the heap between its two reads.
var memStats [2]runtime.MemStats

func (r *replayer) run(mode string, stop int, idx [][]int32, timed bool) repResult {
	r.reset()
	r.errCount, r.firstErr, r.errOnce = 0, "", new(sync.Once)
	msBase, msEnd := &memStats[0], &memStats[1]
	if timed {
		runtime.ReadMemStats(msBase)
	}
	base := newSampler().read() // after ReadMemStats: TinyAllocs is exact (see below)
	res := repResult{}
	t := r.t
	if mode == "serial" {
		var s *sampler
		if timed {
			s = newSampler()
		}
		t0 := time.Now()
		r.serial(stop, s)
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
				r.worker(ids[:n], samplers[p])
				times[p] = int64(time.Since(t0))
			}(p)
		}
		ready.Wait()
		t0 := time.Now()
		close(start)
		done.Wait()
		res.WallNs = int64(time.Since(t0))
		res.PerPWallNs = times
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
	flag.Parse()
	if *path == "" {
		fail(errors.New("-trace FILE is required"))
	}
	if *mode != "serial" && *mode != "threads" {
		fail(fmt.Errorf("-mode %q: choose serial or threads", *mode))
	}
	if *reps < 1 {
		fail(fmt.Errorf("-reps %d: at least 1", *reps))
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
	r := &replayer{t: t, slots: make([]unsafe.Pointer, t.nslots), check: *check}
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
	}{Version: 2, GoVersion: runtime.Version(), Mode: *mode, Procs: t.procs, GOMAXPROCS: gomaxprocs,
		GOGC: *gogc, Ops: t.n, Objects: t.nobj, Slots: t.nslots}
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
