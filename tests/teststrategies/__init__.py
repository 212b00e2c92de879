"""Strategies that exist for the tests only; tests/conftest.py makes them importable (in
subprocesses too) and registers ``pow2``, the worked example of docs/adding-a-strategy.md."""
