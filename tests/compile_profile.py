"""Where a kernel's cold compile goes: per-function CPU time from numba's compile events.

    XDG_CACHE_HOME=$(mktemp -d) .venv/bin/python tests/compile_profile.py go [serial|threads]

Replays a tiny trace through the strategy with an empty numba cache (the cache folder is keyed by
the source hash under XDG_CACHE_HOME) and prints the total, the compiler passes that took longest
(inclusive of the compiles nested in them) and the functions by exclusive CPU time, with how many
specialisations each got. The README's "Where a first run's time goes" quotes it.
"""
import sys
import time

from alloclab.strategies import _numba_cache


def main(strategy: str, mode: str = "serial") -> None:
    _numba_cache.configure()
    from numba.core import event

    from alloclab import workloads
    from alloclab.harness import runner

    funcs: dict[str, list] = {}   # name -> [inclusive s, exclusive s, compiles]
    stack: list[list] = []
    passes: dict[str, float] = {}
    pstack: list[tuple] = []

    class Compiles(event.Listener):
        def on_start(self, ev):
            stack.append([ev.data["dispatcher"].py_func.__qualname__, time.process_time(), 0.0])

        def on_end(self, ev):
            name, c0, child = stack.pop()
            c = time.process_time() - c0
            if stack:
                stack[-1][2] += c
            f = funcs.setdefault(name, [0.0, 0.0, 0])
            f[0] += c
            f[1] += c - child
            f[2] += 1

    class Passes(event.Listener):
        def on_start(self, ev):
            pstack.append((ev.data["name"], time.process_time()))

        def on_end(self, ev):
            name, c0 = pstack.pop()
            passes[name] = passes.get(name, 0.0) + time.process_time() - c0

    event.register("numba:compile", Compiles())
    event.register("numba:run_pass", Passes())
    trace = workloads.generate("random", scale=0.001, seed=1)
    c0, w0 = time.process_time(), time.perf_counter()
    runner.replay_trace(strategy, trace, mode=mode)
    print(f"{strategy} {mode}: first replay {time.process_time() - c0:.1f} s CPU, {time.perf_counter() - w0:.1f} s wall")
    print("passes (inclusive):")
    for name, s in sorted(passes.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {s:6.1f} s  {name}")
    print("functions (exclusive CPU s, inclusive, specialisations):")
    for name, (inc, exc, n) in sorted(funcs.items(), key=lambda kv: -kv[1][1])[:20]:
        print(f"  {exc:6.1f} {inc:6.1f}  x{n}  {name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
