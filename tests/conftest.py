import os

import pytest

# Small arenas keep check-mode shadows and fresh mappings cheap in unit tests.
TEST_ARENA_MB = 256


@pytest.fixture(scope="session")
def arena_mb():
    return TEST_ARENA_MB


@pytest.fixture(scope="session")
def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
