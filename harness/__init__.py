"""alloclab.harness: executor, runner, results store, tuner, report and CLI."""
