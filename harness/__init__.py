"""alloclab.harness: executor, runner, results store, tuner, report and CLI."""
import alloclab.strategies  # noqa: F401  (configures numba's cache folder first)
