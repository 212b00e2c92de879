"""jemalloc, tcmalloc and mimalloc as real peers: replays under --check, their memory figures,
no interposition of glibc's malloc, the unavailable path, and the native cost per pair.

jemalloc loads only in a process started with static TLS to spare (strategies/_real_malloc.py);
where this pytest process was not, its in-process tests are skipped here and
``test_jemalloc_in_a_process_with_static_tls`` runs them in a child pytest that was.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from alloclab import strategies
from alloclab.harness.runner import replay_once, run_cell
from alloclab.strategies import _real_malloc as real
from alloclab.strategies._counters import ALLOCS, FREES, IN_USE
from alloclab.workloads import generate

PEERS = ("jemalloc", "tcmalloc", "mimalloc")
PACKAGES = {"jemalloc": "libjemalloc2", "tcmalloc": "libtcmalloc-minimal4", "mimalloc": "libmimalloc2.0"}


def _peer(name):
    why = strategies.unavailable_reason(name)
    if why is not None:
        pytest.skip(f"{name} unavailable here: {why}")
    return strategies.get(name)


@pytest.mark.parametrize("name", PEERS)
def test_serial_random_check(name):
    mod = _peer(name)
    tr = generate("random", procs=2, seed=3, ops=30_000, dist="mixed", live=600, cross_p=0.3)
    [(_, r)] = run_cell(name, mod.Config(), tr, check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    c = r.counters
    assert c[ALLOCS] == c[FREES] == tr.stats()["allocs"]
    assert c[IN_USE] == 0 and r.state.counters[:, real.LIVE_BLOCKS].sum() == 0
    assert r.state.mem[real.SAMPLES] >= 1
    assert r.peak_mapped_bytes >= r.in_use_at_peak >= tr.stats()["peak_live_bytes"] > 0


@pytest.mark.parametrize("name", PEERS)
def test_threads_oversubscribed_check(name):
    """8 Ps on a 2-core machine: real cross-thread frees, preempted threads, --check on every op."""
    mod = _peer(name)
    tr = generate("random", procs=8, seed=5, ops=40_000, dist="medium", live=800, cross_p=0.4)
    [(_, r)] = run_cell(name, mod.Config(), tr, mode="threads", check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert r.counters[ALLOCS] == r.counters[FREES] == tr.stats()["allocs"]
    assert r.state.counters[:, IN_USE].sum() == 0
    assert r.state.tot[real.SHARED] == 1 and r.state.tot[real.BATCH] == real.PUBLISH_BATCH
    assert r.peak_mapped_bytes >= tr.stats()["peak_live_bytes"]


@pytest.fixture(scope="module")
def sort_trace(tmp_path_factory):
    """A real program's trace: sort(1) recorded with alloclab's LD_PRELOAD recorder."""
    from alloclab.workloads import recorder as R

    if R.compiler() is None:
        pytest.skip("no C compiler: the recorder cannot be built")
    d = tmp_path_factory.mktemp("sort")
    (d / "in.txt").write_text("".join(f"{(i * 7919) % 100003} line {i}\n" for i in range(20000)))
    tr, _ = R.record(["sort", "-S", "64K", "-T", str(d), str(d / "in.txt")], stdout=subprocess.DEVNULL)
    return tr


@pytest.mark.parametrize("name", PEERS)
def test_recorded_trace_check(name, sort_trace):
    mod = _peer(name)
    r = replay_once(mod, mod.Config(), sort_trace, sort_trace.procs, check=True)
    assert r.status == "ok", r.error
    assert mod.check(r.state) == []
    assert r.counters[ALLOCS] == int((sort_trace.op == 0).sum()) > 100


@pytest.mark.parametrize("name", PEERS)
def test_memory_figures(name):
    """Live objects of 48 MiB and more at the sample: the library's own figure holds them (no floor
    involved) and peak mapped >= the bytes really handed out."""
    mod = _peer(name)
    tr = generate("random", procs=1, seed=9, ops=1200, dist="large", live=600)
    stop = 600                     # the live set is still filling: every block is live (leaked at the end)
    live = int(tr.size[:stop][tr.op[:stop] == 0].astype(np.int64).sum() - tr.size[:stop][tr.op[:stop] == 1].sum())
    assert live > 48 << 20
    r = replay_once(mod, mod.Config(), tr, 1, check=True, stop=stop)
    assert r.status == "ok", r.error
    st = r.state
    assert mod.check(st) == []
    assert st.mem[real.SAMPLES] == 1
    # the sampled figure alone: it grew, and with its baseline (mem[0] in every loaded peer; memory an
    # earlier run in this process left committed is reused, and hidden in the baseline) it holds the live set
    assert st.mem[real.LAST_OS] > 0
    assert st.mem[real.LAST_OS] + st.mem[0] >= live, (int(st.mem[real.LAST_OS]), int(st.mem[0]), live)
    assert r.peak_mapped_bytes >= st.counters[:, IN_USE].sum() >= live
    if name == "jemalloc":
        assert st.mem[mod.ALLOCATED] >= live and st.mem[mod.MAPPED] >= st.mem[mod.ALLOCATED]
    if name == "tcmalloc":
        assert mod.prop("generic.current_allocated_bytes") >= live


def test_loading_does_not_interpose_glibc_malloc():
    """After every peer is loaded, the process's malloc/free are still glibc's: the symbol the
    global scope resolves lives in libc.so.6, and a glibc block still carries glibc's chunk header."""
    for name in PEERS:
        strategies.unavailable_reason(name)        # loads the library where it can be
    libc = ctypes.CDLL(None)
    libc.dlsym.restype, libc.dlsym.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]

    class DlInfo(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p), ("sname", ctypes.c_char_p),
                    ("saddr", ctypes.c_void_p)]

    for sym in (b"malloc", b"free", b"realloc", b"calloc"):
        info = DlInfo()
        assert libc.dladdr(ctypes.c_void_p(libc.dlsym(None, sym)), ctypes.byref(info))
        assert os.path.basename(info.fname.decode()).startswith("libc.so"), (sym, info.fname)
    assert strategies.get("system").GLIBC_CHUNKS    # glibc's malloc answers with its own chunk layout
    loaded = [n for n in PEERS if strategies.unavailable_reason(n) is None]
    assert "tcmalloc" in loaded and "mimalloc" in loaded   # this machine has the packages


@pytest.mark.parametrize("name", PEERS)
def test_unavailable_library_is_skipped_with_its_package(name, monkeypatch, tmp_path, capsys):
    mod = strategies.descriptor(name).load()
    monkeypatch.setattr(mod, "SONAME", "liballoclab-missing.so.9")
    why = strategies.unavailable_reason(name)
    assert why == f"liballoclab-missing.so.9 not found (Debian: apt-get install {PACKAGES[name]})"
    assert name not in strategies.names() and name in strategies.names(include_unavailable=True)
    assert name not in strategies.kernel_names()
    with pytest.raises(strategies.UnavailableStrategy, match=PACKAGES[name]):
        strategies.get(name)
    from alloclab.harness.bench import load_suite
    from alloclab.harness.cli import main

    suite_file = tmp_path / "s.toml"
    suite_file.write_text(textwrap.dedent(f"""
        [suite]
        name = "t"
        [[matrix]]
        strategies = ["bump", "{name}"]
        workloads = [{{ name = "random", ops = 1000 }}]
    """))
    suite = load_suite(str(suite_file))
    assert {c.strategy for c in suite.cells} == {"bump"}
    assert any(PACKAGES[name] in s for s in suite.skipped)
    assert main(["list"]) == 0
    assert f"[unavailable: {why}]" in capsys.readouterr().out
    from alloclab.harness import doctor

    [piece] = [p for p in doctor.real_allocator_pieces() if p.name == name]
    assert piece.status == "missing" and piece.install == f"Debian: apt-get install {PACKAGES[name]}"
    assert "suites skip its cells" in piece.disables


def test_jemalloc_needs_static_tls_and_says_how():
    lib = real.Library("libjemalloc.so.2", "libjemalloc2", ("mallocx",))
    if real.STATIC_TLS_TUNABLE in os.environ.get("GLIBC_TUNABLES", ""):
        assert lib.reason is None
    else:
        assert lib.reason is not None and f"GLIBC_TUNABLES={real.STATIC_TLS_TUNABLE}=" in lib.reason


@pytest.mark.skipif(real.STATIC_TLS_TUNABLE in os.environ.get("GLIBC_TUNABLES", ""),
                    reason="this process has the static TLS: jemalloc's tests ran above")
def test_jemalloc_in_a_process_with_static_tls():
    """The jemalloc cases above, and the shared contract suite's, in a child pytest started as the CLI starts."""
    env = dict(os.environ, GLIBC_TUNABLES=f"{real.STATIC_TLS_TUNABLE}={real.STATIC_TLS_BYTES}")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", "jemalloc and not static_tls",
                        __file__, os.path.join(os.path.dirname(__file__), "test_strategy_contract.py")],
                       env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert " passed" in p.stdout and "skipped" not in p.stdout.splitlines()[-1], p.stdout[-500:]


_CACHE_PROBE = textwrap.dedent("""
    from alloclab import strategies
    from alloclab.strategies._counters import IN_USE
    from alloclab.strategies._heap import Heap
    m = strategies.get("mimalloc")
    st = m.make_state(m.Config(), Heap(1 << 20), 1)
    a = m.alloc(st, 0, 100, 0)
    m.free(st, 0, a, 100, 0)
    assert a > 0 and st.counters[0, IN_USE] == 0
""")


def test_kernels_load_from_numba_cache_in_a_new_process(tmp_path):
    """Function pointers live in the state, not the code: cached kernels load in a fresh process,
    where the library sits at another address."""
    _peer("mimalloc")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_DEBUG_CACHE="1")
    outs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(p.stdout + p.stderr)
    first, second = outs
    assert "data saved to" in first and "mimalloc.alloc" in first
    loaded = [ln for ln in second.splitlines() if "data loaded from" in ln]
    assert any("mimalloc.alloc" in ln for ln in loaded) and any("mimalloc.free" in ln for ln in loaded), second[-2000:]
    assert "data saved to" not in second


# ------------------------------------------------------------- the native cost per pair

NATIVE_C = r"""
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* Replays a trace's ops (op, size, obj) against one library's prefixed API, touching each
   block as the executor does: the native cost per op that the executor's figure is held to. */
typedef void *(*m1)(size_t); typedef void *(*m2)(size_t, int);
typedef void (*f2)(void *, size_t); typedef void (*f3)(void *, size_t, int);
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    int je = strcmp(argv[2], "mallocx") == 0;   /* jemalloc's calls take flags */
    void *al = dlsym(h, argv[2]), *fr = dlsym(h, argv[3]);
    long n = atol(argv[4]), nobj = atol(argv[5]), reps = atol(argv[6]);
    int8_t *op = malloc(n); int32_t *size = malloc(4 * n); int64_t *obj = malloc(8 * n);
    FILE *f = fopen(argv[7], "rb");
    if (fread(op, 1, n, f) != (size_t)n || fread(size, 4, n, f) != (size_t)n || fread(obj, 8, n, f) != (size_t)n) return 3;
    void **addr = calloc(nobj, sizeof(void *));
    double best = 1e30; long live = 0;
    for (long r = 0; r < reps; r++) {
        struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < n; i++) {
            if (op[i] == 0) {
                void *p = je ? ((m2)al)(size[i], 0) : ((m1)al)(size[i]);
                if (size[i] >= 8) *(int64_t *)p = obj[i]; else *(char *)p = (char)obj[i];
                addr[obj[i]] = p; live++;
            } else {
                if (je) ((f3)fr)(addr[obj[i]], size[i], 0); else ((f2)fr)(addr[obj[i]], size[i]);
                live--;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n;
        if (ns < best) best = ns;
    }
    printf("%.2f %ld\n", best, live);
    return 0;
}
"""
NATIVE_API = {"jemalloc": ("mallocx", "sdallocx"), "tcmalloc": ("tc_malloc", "tc_free_sized"),
              "mimalloc": ("mi_malloc", "mi_free_size")}


def native_ns_per_op(name: str, trace, workdir, reps: int = 3) -> float:
    """Best of ``reps`` replays of ``trace`` (serial order) by a C loop calling the library directly."""
    from alloclab.workloads import recorder as R

    cc = R.compiler()
    src, exe, data = workdir / "native.c", workdir / "native", workdir / f"{name}.ops"
    if not exe.exists():
        src.write_text(NATIVE_C)
        subprocess.run(cc.split() + ["-O2", "-o", str(exe), str(src), "-ldl"], check=True, capture_output=True)
    data.write_bytes(trace.op.astype(np.int8).tobytes() + trace.size.astype(np.int32).tobytes()
                     + trace.obj.astype(np.int64).tobytes())
    mod = strategies.descriptor(name).load()
    env = dict(os.environ, GLIBC_TUNABLES=f"{real.STATIC_TLS_TUNABLE}={real.STATIC_TLS_BYTES}", **getattr(mod, "ENV", {}))
    out = subprocess.run([str(exe), mod.SONAME, *NATIVE_API[name], str(len(trace)), str(trace.nobj), str(reps),
                          str(data)], capture_output=True, text=True, check=True, env=env, timeout=300)
    ns, live = out.stdout.split()
    assert int(live) == 0    # the loop freed what it allocated: it replayed the whole trace
    return float(ns)


@pytest.mark.parametrize("name", PEERS)
def test_native_loop_replays_the_same_pattern(name, tmp_path):
    """The C loop that gives the native cost runs the trace to the end; both figures are printed
    (pytest -s) for docs/design.md. No timing is asserted: the machine is shared."""
    from alloclab.workloads import recorder as R

    if R.compiler() is None:
        pytest.skip("no C compiler")
    _peer("tcmalloc")   # the library files are what the loop needs; jemalloc loads in the child
    tr = generate("random", procs=1, seed=1, ops=400_000, dist="small")
    native = native_ns_per_op(name, tr, tmp_path)
    assert 0 < native < 10_000
    if strategies.unavailable_reason(name) is None:
        mod = strategies.get(name)
        t0 = time.perf_counter()
        runs = run_cell(name, mod.Config(), tr, reps=3)
        assert all(r.status == "ok" for _, r in runs)
        ns = min(r.wall_s for _, r in runs) / len(tr) * 1e9
        # the executor's own floor on the same trace: bump, which does no allocator work to speak of
        floor = min(r.wall_s for _, r in run_cell("bump", strategies.get("bump").Config(), tr, reps=3)) / len(tr) * 1e9
        print(f"{name}: executor {ns:.1f} ns/op, native {native:.1f} ns/op, ratio {ns / native:.2f}; "
              f"executor floor (bump) {floor:.1f} ns/op ({time.perf_counter() - t0:.1f} s)")


# ------------------------------------------------------------- the report's ranking page

def _summary_rows():
    import pandas as pd

    rows = []
    cells = {"web": {"system": (60, 9.0), "jemalloc": (40, 8.0), "tcmalloc": (30, 12.0), "go": (45, 6.0),
                     "freelist": (20, 10.0), "bitmap": (35, 7.0)},
             "random": {"system": (50, 2.0), "mimalloc": (25, 3.0), "go": (75, 1.5), "bitmap": (20, 2.5)}}
    for wl, d in cells.items():
        for s, (ns, mb) in d.items():
            rows.append(dict(strategy=s, label=s, wlabel=wl, workload=wl, mode="serial", procs=1, ns_per_op=float(ns),
                             peak_mapped_mb=mb))
    rows.append(dict(strategy="go", label="go[without GC lag]", wlabel="web", workload="web", mode="serial", procs=1,
                     ns_per_op=30.0, peak_mapped_mb=20.0))
    return pd.DataFrame(rows)


def test_ranking_against_the_best_real_allocator():
    from alloclab.harness import report_ranking as RR

    t = RR.ranking_table(_summary_rows())
    web = t[t["workload"] == "web"].set_index("label")
    assert set(web["fastest_real"]) == {"tcmalloc"} and set(web["leanest_real"]) == {"jemalloc"}
    assert web.loc["freelist", "rel_time"] == pytest.approx(20 / 30) and web.loc["freelist", "rank"] == 1
    assert web.loc["go", "rel_memory"] == pytest.approx(6 / 8) and web.loc["go", "kind"] == "model"
    assert web.loc["tcmalloc", "rel_time"] == 1.0 and web.loc["tcmalloc", "kind"] == "real"
    rnd = t[t["workload"] == "random"].set_index("label")
    assert rnd.loc["go", "rel_time"] == pytest.approx(75 / 25) and rnd.loc["go", "leanest_real"] == "system"
    ov = RR.overview(t).set_index("label")
    assert ov.loc["go", "geomean_rel_time"] == pytest.approx(np.sqrt(45 / 30 * 75 / 25))
    assert ov.loc["bitmap", "fastest_on"] == "random" and ov.loc["go", "workloads"] == 2


def test_ranking_section_and_the_claims_row():
    import pandas as pd

    from alloclab.harness import report_ranking as RR
    from alloclab.harness.report import ReportInput

    summary = _summary_rows()
    sec = RR.section(ReportInput(pd.DataFrame(), summary, (), "system"))
    assert sec.title == RR.TITLE and len(sec.tables) == 2
    [(slug, _, png)] = sec.figures
    assert slug == "ranking" and png[:8] == b"\x89PNG\r\n\x1a\n"
    claims = pd.DataFrame([dict(id="latency", claim="pool vs malloc", article_ratio=3.0,
                                compared="system (libc malloc) vs bitmap (bitmap MemoryPool), web, serial",
                                measured="", measured_ratio=60 / 35, verdict="direction holds, smaller effect"),
                           dict(id="mcache", claim="x", article_ratio=None, compared="go model, web", measured="",
                                measured_ratio=0.9, verdict="holds")])
    out = RR.with_best_real(claims, summary)
    assert list(out["id"]) == ["latency", "latency-best-real", "mcache"]
    row = out.iloc[1]
    assert row["measured_ratio"] == pytest.approx(30 / 35) and row["verdict"] == "does not hold"
    assert row["compared"].startswith("tcmalloc (fastest real malloc) vs bitmap")
    # glibc alone: nothing to add
    only_glibc = summary[~summary["strategy"].isin(["jemalloc", "tcmalloc", "mimalloc"])]
    assert RR.with_best_real(claims, only_glibc).equals(claims)
