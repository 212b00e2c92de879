"""Trace import (glibc mtrace, valgrind --trace-malloc=yes, alloclab's recorder) and the recorder itself.

Hand-written logs pin the counting of every malformed case; real programs
(Python with PYTHONMALLOC=malloc, sort, a pthread C program, valgrind, mtrace)
are recorded inside the tests, imported and replayed with check=True on every
kernel strategy.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from alloclab import strategies
from alloclab.harness.cli import main
from alloclab.harness.runner import run_cell
from alloclab.workloads import importers as I
from alloclab.workloads.trace import TraceError, load

HAVE_CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler: the recorder cannot be built")


def _ops(tr):
    """The trace as (op, obj, size) tuples."""
    return list(zip(tr.op.tolist(), tr.obj.tolist(), tr.size.tolist()))


# ---------------------------------------------------------------- mtrace

MTRACE_LOG = textwrap.dedent("""\
    = Start
    @ ./prog:[0x4005d6] + 0x1000 0x64
    @ ./prog:(main+0x1f)[0x4005e4] + 0x2000 0x10
    @ [0x4005f0] - 0x9999
    @ ./prog:[0x4005f4] - 0x1000
    @ ./prog:[0x4005f8] - 0x1000
    this is not an mtrace line
    @ ./prog:[0x400600] < 0x2000
    @ ./prog:[0x400600] > 0x3000 0xc8
    + 0x1000 0x0
    @ ./prog:[0x400610] ! 0x3000 0x100000
    @ ./prog:[0x400620] + 0x4000
    @ broken caller without a bracket
    - 0x3000
    = End
    """)


def test_mtrace_hand_written(tmp_path):
    f = tmp_path / "m.log"
    f.write_text(MTRACE_LOG)
    tr, r = I.import_mtrace(f)
    # + 0x1000 (obj 0), + 0x2000 (1), free 0x1000, realloc 0x2000 -> 0x3000 (free 1, alloc 2),
    # + 0x1000 size 0 -> 1 (obj 3: the reused address is a new object), free 0x3000
    assert _ops(tr) == [(0, 0, 100), (0, 1, 16), (1, 0, 100), (1, 1, 16), (0, 2, 200), (0, 3, 1), (1, 2, 200)]
    assert tr.procs == 1 and r.procs == 1 and r.ops == 7 and r.allocs == 4 and r.frees == 3
    assert r.live_at_end == 1 and r.objects == 4 and r.lines == 15
    assert r.skipped == {"free_unknown": 1, "double_free": 1, "malformed": 3, "realloc_failed": 1}
    assert r.malformed_at == [7, 12, 13]
    assert r.handled == {"realloc_split": 1, "zero_size_as_1": 1}
    assert tr.meta["generator"] == "import:mtrace" and tr.meta["import_report"]["skipped"]["malformed"] == 3


def test_mtrace_malformed_only_is_one_line_error(tmp_path):
    f = tmp_path / "junk.log"
    f.write_text("garbage\n- 0x10\n+ 0xzz 0x10\n")
    with pytest.raises(TraceError, match="no valid allocation ops.*3 lines read, 1 free_unknown, 2 malformed"):
        I.import_mtrace(f)
    with pytest.raises(TraceError, match="no such file"):
        I.import_mtrace(tmp_path / "missing.log")
    with pytest.raises(TraceError, match="not a regular file"):
        I.import_mtrace(tmp_path)


def test_mtrace_real_program(tmp_path):
    """glibc's own mtrace output (glibc >= 2.34 keeps it in libc_malloc_debug.so)."""
    cc = HAVE_CC
    dbg = next((p for p in ("/lib/x86_64-linux-gnu/libc_malloc_debug.so.0", "/lib/aarch64-linux-gnu/libc_malloc_debug.so.0",
                            "/usr/lib64/libc_malloc_debug.so.0") if os.path.exists(p)), None)
    if not cc:
        pytest.skip("no C compiler")
    src = tmp_path / "m.c"
    src.write_text(textwrap.dedent("""\
        #include <mcheck.h>
        #include <stdlib.h>
        int main(void) {
            mtrace();
            void *keep[64];
            for (int i = 0; i < 64; i++) keep[i] = malloc(16 + i * 8);
            for (int i = 0; i < 64; i += 2) free(keep[i]);
            void *r = realloc(keep[1], 5000);
            void *c = calloc(10, 10);
            free(r); free(c);
            muntrace();
            return 0;
        }
        """))
    subprocess.run([cc, "-O0", "-o", str(tmp_path / "m"), str(src)], check=True)
    log = tmp_path / "mt.log"
    env = dict(os.environ, MALLOC_TRACE=str(log))
    if dbg:
        env["LD_PRELOAD"] = dbg
    subprocess.run([str(tmp_path / "m")], env=env, check=True)
    if not log.exists() or log.stat().st_size == 0:
        pytest.skip("this libc wrote no mtrace log")
    tr, r = I.import_mtrace(log)
    assert r.allocs == 64 + 1 + 1 and r.frees == 32 + 1 + 1 + 1  # realloc = free + alloc
    assert r.handled["realloc_split"] == 1 and r.live_at_end == 31
    assert r.skipped.get("malformed", 0) == 0 and r.skipped.get("free_unknown", 0) == 0


# ---------------------------------------------------------------- valgrind

VALGRIND_LOG = textwrap.dedent("""\
    ==17721== Memcheck, a memory error detector
    ==17721== Command: ./v
    --17721-- malloc(100) = 0x4A40040
    --17721-- calloc(10,8) = 0x4A400F0
    --17721-- realloc(0x4A40040,200) = 0x4A40180
    --17721-- memalign(al 64, size 100) = 0x4A40300
    --17721-- malloc(0) = 0x4A403C0
    --17721-- realloc(0x0,30)malloc(30) = 0x4A404A0
    --17721-- realloc(0x4A404A0,0)free(0x4A404A0)
    --17721--  = 0
    --17721-- realloc(0x4A400F0,300)0x4A40900
    --17721-- _Znwm(24) = 0x4A40A00
    --17721-- _ZdlPv(0x4A40A00)
    --17721-- free(0x0)
    --17721-- free(0x12345)
    --17721-- free(0x4A40180)
    --17721-- free(0x4A40180)
    --17721-- malloc(abc) = 0x4A40B00
    --17721-- free(
    --17721-- Reading syms from /usr/lib/libc.so.6
    hello from the program
    --17722-- malloc(50) = 0x4A40040
    --17721-- malloc(1048576)
    --17721-- malloc(16) = 0x4A40C00
    ==17721== HEAP SUMMARY:
    """)


def test_valgrind_hand_written(tmp_path):
    f = tmp_path / "vg.log"
    f.write_text(VALGRIND_LOG)
    tr, r = I.import_valgrind(f)
    assert _ops(tr) == [
        (0, 0, 100), (0, 1, 80), (1, 0, 100), (0, 2, 200), (0, 3, 100), (0, 4, 1), (0, 5, 30), (1, 5, 30),
        (1, 1, 80), (0, 6, 300), (0, 7, 24), (1, 7, 24), (1, 2, 200), (0, 8, 16)]
    assert r.skipped == {"free_null": 1, "free_unknown": 1, "double_free": 1, "malformed": 3,
                         "not_trace": 5, "other_process": 1}
    # malloc(abc), free( (an unfinished call), malloc(1048576) that never got its result
    assert r.malformed_at == [18, 19, 23]
    assert r.handled == {"calloc": 1, "realloc_split": 2, "memalign": 1, "zero_size_as_1": 1,
                         "realloc_as_malloc": 1, "realloc_as_free": 1}
    assert r.extra["pid"] == 17721 and r.live_at_end == 4 and tr.procs == 1


def test_valgrind_real_run(tmp_path):
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    (tmp_path / "in.txt").write_text("".join(f"{(i * 7919) % 1000}\n" for i in range(2000)))
    log = tmp_path / "vg.log"
    subprocess.run(["valgrind", "--trace-malloc=yes", f"--log-file={log}", "sort", "-n", str(tmp_path / "in.txt")],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    tr, r = I.import_valgrind(log)
    assert r.allocs > 20 and r.frees > 10 and r.skipped.get("malformed", 0) == 0
    assert r.skipped.get("double_free", 0) == 0 and r.skipped.get("free_unknown", 0) == 0
    [(_, res)] = run_cell("freelist", strategies.get("freelist").Config(), tr, check=True, arena_mb=256)
    assert res.status == "ok", res.error


# ---------------------------------------------------------------- rec (binary)

def _rec_bytes(records, version=1, magic=b"ALLOCREC", rec_size=32):
    head = struct.pack("<8sIIIIQ", magic, version, rec_size, 4242, 1, 0)
    body = b"".join(struct.pack("<HHIQQQ", op, 0, tid, size, arg, res) for op, tid, size, arg, res in records)
    return head + body


REC = [  # op, tid, size, arg, result
    (1, 7, 100, 0, 0x1000),          # malloc on thread 7 -> P0
    (1, 9, 50, 0, 0x2000),           # thread 9 -> P1
    (4, 9, 0, 0x1000, 0),            # cross-thread free
    (4, 9, 0, 0x1000, 0),            # double free
    (4, 7, 0, 0xdead, 0),            # unknown
    (4, 7, 0, 0, 0),                 # free(NULL)
    (3, 7, 300, 0x2000, 0x3000),     # realloc: free + alloc
    (3, 7, 10, 0, 0x4000),           # realloc(NULL)
    (3, 7, 0, 0x4000, 0),            # realloc(p, 0) -> free
    (3, 7, 1 << 20, 0x3000, 0),      # failed realloc
    (2, 9, 80, 10, 0x5000),          # calloc
    (5, 9, 64, 64, 0x6000),          # posix_memalign
    (6, 9, 128, 64, 0x7000),         # aligned_alloc
    (7, 9, 32, 32, 0x8000),          # memalign
    (1, 9, 0, 0, 0x9000),            # malloc(0)
    (1, 9, 64, 0, 0),                # failed malloc
    (1, 9, 2 << 30, 0, 0xa000),      # above the 1 GiB limit
    (4, 9, 0, 0xa000, 0),            # its free
    (99, 9, 1, 2, 3),                # unknown op
    (1, 11, 16, 0, 0x8000),          # address still live: implicit free, thread 11 -> P2
]


def test_rec_hand_written(tmp_path):
    f = tmp_path / "a.rec"
    f.write_bytes(_rec_bytes(REC) + b"\x01\x02\x03")   # + a partial record
    tr, r = I.import_rec(f)
    assert tr.procs == 3 and r.extra["threads"] == 3 and r.extra["pid"] == 4242
    assert r.lines == len(REC) and r.extra["truncated_tail_bytes"] == 3
    assert r.skipped == {"double_free": 1, "free_unknown": 1, "free_null": 1, "realloc_failed": 1,
                         "failed_alloc": 1, "oversize": 1, "free_of_oversize": 1, "malformed": 1,
                         "truncated_tail": 1}
    assert r.malformed_at == [19]
    assert r.handled == {"realloc_split": 1, "realloc_as_malloc": 1, "realloc_as_free": 1, "calloc": 1,
                         "memalign": 3, "zero_size_as_1": 1, "implicit_free": 1}
    assert tr.p.tolist() == [0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
    assert _ops(tr)[:5] == [(0, 0, 100), (0, 1, 50), (1, 0, 100), (1, 1, 50), (0, 2, 300)]
    assert _ops(tr)[-2:] == [(1, 7, 32), (0, 9, 16)]   # memalign's block freed implicitly, then the new one


def test_rec_truncated_and_corrupt_files(tmp_path):
    good = _rec_bytes(REC[:3])
    f = tmp_path / "t.rec"
    for cut in range(len(good) + 1):
        f.write_bytes(good[:cut])
        try:
            tr, r = I.import_rec(f)
        except TraceError as e:   # header cut, or no op left: one line, never another exception
            assert "\n" not in str(e)
            assert cut < 32 + 32, cut
            continue
        assert r.lines == (cut - 32) // 32 and len(tr) >= 1
        assert r.skipped.get("truncated_tail", 0) == (1 if (cut - 32) % 32 else 0)
    for blob, msg in ((b"", "truncated recording"), (_rec_bytes([], magic=b"NOTAREC!"), "bad magic"),
                      (_rec_bytes([], version=9), "newer than"), (_rec_bytes([], rec_size=24), "record size 24"),
                      (_rec_bytes([]), "no valid allocation ops"), (_rec_bytes([(4, 0, 0, 0x10, 0)]), "1 free_unknown")):
        f.write_bytes(blob)
        with pytest.raises(TraceError, match=msg):
            I.import_rec(f)


def test_random_bytes_never_crash(tmp_path):
    """Garbage in every format: a trace or a one-line TraceError, nothing else."""
    rng = np.random.default_rng(7)
    f = tmp_path / "noise"
    for i in range(30):
        raw = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        if i % 3 == 0:  # mostly-plausible text
            raw = VALGRIND_LOG.encode()[: len(raw)] + raw[:50] + MTRACE_LOG.encode()[: len(raw)]
        if i % 5 == 0:
            raw = _rec_bytes(REC)[: 32 + len(raw)] + raw
        f.write_bytes(raw)
        for fmt in I.FORMATS:
            try:
                tr, r = I.import_file(fmt, f)
                tr.validate()
            except TraceError as e:
                assert "\n" not in str(e)


# ---------------------------------------------------------------- the recorder, on real programs

@pytest.fixture(scope="module")
def recorder():
    if not HAVE_CC:
        pytest.skip("no C compiler: the recorder cannot be built")
    from alloclab.workloads import recorder as R

    R.library_path()
    return R


PY_SNIPPET = textwrap.dedent("""\
    import threading, json
    def work(k):
        d = {}
        for i in range(1500):
            d[str(i) * (1 + i % 7)] = [k] * (i % 13)
            if i % 3 == 0:
                d.pop(str(i - 3) * (1 + (i - 3) % 7), None)
        json.dumps(list(d)[:200])
    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    """)


@pytest.fixture(scope="module")
def python_trace(recorder):
    tr, r = recorder.record([sys.executable, "-S", "-c", PY_SNIPPET], env={"PYTHONMALLOC": "malloc"})
    return tr, r


@pytest.fixture(scope="module")
def sort_trace(recorder, tmp_path_factory):
    d = tmp_path_factory.mktemp("sort")
    (d / "in.txt").write_text("".join(f"{(i * 7919) % 100003} line {i}\n" for i in range(30000)))
    tr, r = recorder.record(["sort", "--parallel=2", "-S", "64K", "-T", str(d), str(d / "in.txt")],
                            stdout=subprocess.DEVNULL)
    return tr, r


def _small(tr, n=50_000):
    """A prefix of at most n ops: still a valid trace (every free in it has its alloc in it)."""
    from alloclab.workloads.trace import make_trace

    n = min(n, len(tr))
    return make_trace(tr.p[:n], tr.op[:n], tr.kind[:n], tr.size[:n], tr.obj[:n], tr.procs, tr.meta)


def test_recorded_python_is_consistent(python_trace):
    tr, r = python_trace
    # with PYTHONMALLOC=malloc every object goes through malloc: thousands of ops, two worker threads + main
    assert r.allocs > 5000 and r.frees > 3000 and tr.procs >= 3 and r.extra["threads"] >= 3
    assert r.extra["exit_status"] == 0 and r.extra["process"] == "the command itself"
    # the recorder's ordering: no address handed out twice while live, nothing freed twice or unknown
    for bad in ("free_unknown", "double_free", "malformed", "truncated_tail"):
        assert r.skipped.get(bad, 0) == 0, (bad, r.skipped)
    assert r.handled.get("implicit_free", 0) == 0
    assert r.handled.get("realloc_split", 0) > 0
    assert tr.meta["generator"] == "record" and "PYTHONMALLOC" not in tr.meta["source"]


def test_recorded_sort(sort_trace):
    tr, r = sort_trace
    assert r.allocs > 100 and r.extra["exit_status"] == 0
    assert r.skipped.get("free_unknown", 0) == 0 and r.skipped.get("double_free", 0) == 0


@pytest.mark.parametrize("name", strategies.kernel_names())
def test_replay_recorded_traces_with_check(name, python_trace, sort_trace, arena_mb):
    mod = strategies.get(name)
    for tr in (_small(python_trace[0]), sort_trace[0]):
        [(_, res)] = run_cell(name, mod.Config(), tr, check=True, arena_mb=arena_mb)
        assert res.status == "ok", (name, res.error)
        assert int(res.counters[0]) == int((tr.op == 0).sum())


@pytest.mark.parametrize("name", ["freelist", "go", "system"])
def test_replay_recorded_threads_mode(name, python_trace, arena_mb):
    tr = _small(python_trace[0])
    [(_, res)] = run_cell(name, strategies.get(name).Config(), tr, mode="threads", check=True, arena_mb=arena_mb)
    assert res.status == "ok", (name, res.error)
    assert len(res.per_p_wall_s) == tr.procs


PTHREAD_C = textwrap.dedent("""\
    #include <pthread.h>
    #include <stdlib.h>
    #include <string.h>
    #include <unistd.h>
    #include <sys/wait.h>
    #define N 4
    #define SLOTS 256
    static void *shared[SLOTS];
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static pthread_barrier_t start;
    static void *work(void *arg) {
        unsigned s = (unsigned)(size_t)arg * 2654435761u + 1;
        pthread_barrier_wait(&start);
        for (int i = 0; i < 20000; i++) {
            s = s * 1103515245u + 12345u;
            size_t n = 1 + (s >> 8) % 600;
            void *p = (s & 1) ? malloc(n) : calloc(1, n);
            memset(p, 1, n);
            if ((s >> 3) % 5 == 0) p = realloc(p, n * 2);
            pthread_mutex_lock(&mu);     /* hand the block to a slot: often freed by another thread */
            int k = (s >> 12) % SLOTS;
            void *old = shared[k];
            shared[k] = p;
            pthread_mutex_unlock(&mu);
            free(old);
        }
        return NULL;
    }
    int main(void) {
        pthread_t t[N];
        pthread_barrier_init(&start, NULL, N);
        for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, work, (void *)i);
        pid_t pid = fork();            /* a child while the threads run: it records to its own file */
        if (pid == 0) {
            void *q = malloc(77);
            free(q);
            exit(0);               /* exit, not _exit: the recorder flushes in a destructor */
        }
        for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
        waitpid(pid, NULL, 0);
        for (int k = 0; k < SLOTS; k++) free(shared[k]);
        return 0;
    }
    """)


def test_recorder_threads_and_fork(recorder, tmp_path, arena_mb):
    """Four threads churning malloc/calloc/realloc/free with cross-thread frees, and a fork mid-run:
    the log must stay consistent (the ordering argument in recorder.c) and the child record apart."""
    src = tmp_path / "churn.c"
    src.write_text(PTHREAD_C)
    exe = tmp_path / "churn"
    subprocess.run([HAVE_CC, "-O0", "-pthread", "-o", str(exe), str(src)], check=True)
    keep = tmp_path / "logs"
    tr, r = recorder.record([str(exe)], keep_dir=keep)
    assert r.extra["exit_status"] == 0 and r.extra["processes_recorded"] == 2
    assert sorted(p.name for p in keep.iterdir())[0] == "rec" and len(list(keep.iterdir())) == 2
    assert r.extra["threads"] >= 4 and tr.procs == r.extra["threads"]
    assert r.allocs >= 4 * 20000 and r.live_at_end <= 16   # libc's own thread bookkeeping may stay
    for bad in ("free_unknown", "double_free", "malformed", "failed_alloc", "truncated_tail"):
        assert r.skipped.get(bad, 0) == 0, (bad, r.skipped)
    assert r.handled.get("implicit_free", 0) == 0 and r.handled["realloc_split"] > 1000
    # cross-P frees are real in this trace
    alloc_p = np.full(tr.nobj, -1)
    alloc_p[tr.obj[tr.op == 0]] = tr.p[tr.op == 0]
    fr = tr.op == 1
    cross = alloc_p[tr.obj[fr]] != tr.p[fr]
    assert cross.sum() > 500, cross.mean()
    # the child's own file: its malloc(77) and free
    child = next(p for p in keep.iterdir() if p.name != "rec")
    ctr, cr = I.import_rec(child)
    assert 77 in ctr.size.tolist() and cr.extra["pid"] != r.extra["pid"]
    small = _small(tr)
    [(_, res)] = run_cell("freelist", strategies.get("freelist").Config(), small, mode="threads", check=True,
                          arena_mb=arena_mb)
    assert res.status == "ok", res.error


def test_recorder_build_errors(monkeypatch, tmp_path):
    from alloclab.workloads import recorder as R

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))   # no cc, gcc, clang
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(R.RecorderError, match="no C compiler"):
        R.library_path()


# ---------------------------------------------------------------- CLI

def test_cli_trace_import(tmp_path, capsys):
    log = tmp_path / "m.log"
    log.write_text(MTRACE_LOG)
    out = tmp_path / "m.parquet"
    assert main(["trace", "import", "--format", "mtrace", str(log), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "7 ops" in text and "double frees" in text and "malformed" in text and "first at line 7, 12, 13" in text
    tr = load(out)
    assert len(tr) == 7 and tr.meta["generator"] == "import:mtrace"
    assert main(["run", "-s", "bump", "-w", f"trace:{out}", "--reps", "1", "--check"]) == 0
    capsys.readouterr()
    for args, msg in (([str(tmp_path / "none.log")], "no such file"),
                      ([str(tmp_path)], "not a regular file")):
        assert main(["trace", "import", "--format", "mtrace", *args, "-o", str(tmp_path / "x.parquet")]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    junk = tmp_path / "junk.log"
    junk.write_text("nothing to see\n")
    for fmt in I.FORMATS:
        assert main(["trace", "import", "--format", fmt, str(junk), "-o", str(tmp_path / "x.parquet")]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "x.parquet").exists()
    assert main(["trace", "import", "--format", "mtrace", str(log), "-o", str(tmp_path / "no" / "x.parquet")]) == 2
    assert "output folder does not exist" in capsys.readouterr().err


@needs_cc
def test_cli_trace_record(tmp_path, capsys, recorder):
    out = tmp_path / "py.parquet"
    monkey_env = dict(os.environ, PYTHONMALLOC="malloc")
    res = subprocess.run([sys.executable, "-m", "alloclab.harness.cli", "trace", "record", "-o", str(out), "--",
                          sys.executable, "-S", "-c", "x = [str(i) for i in range(2000)]"],
                         capture_output=True, text=True, env=monkey_env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "rec import of" in res.stdout and "wrote" in res.stdout and "threads: 1" in res.stdout
    tr = load(out)
    assert (tr.op == 0).sum() > 2000 and tr.meta["generator"] == "record"
    assert main(["trace", "record", "-o", str(tmp_path / "x.parquet"), "--", "no-such-command-xyz"]) == 2
    assert "command not found" in capsys.readouterr().err
    assert main(["trace", "record", "-o", str(tmp_path / "x.parquet")]) == 2
    assert "no command to record" in capsys.readouterr().err
    # a failing command still gives its trace, with a note
    assert main(["trace", "record", "-o", str(tmp_path / "f.parquet"), "--", sys.executable, "-S", "-c",
                 "import sys; sys.exit(3)"]) == 0
    assert "exited with status 3" in capsys.readouterr().err and (tmp_path / "f.parquet").exists()
