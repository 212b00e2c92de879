"""The Optuna internals alloclab relies on (harness/optuna_compat.py) are still there.

They are private, so any Optuna release may move them; this test is what
notices, naming the installed version and the one they were last checked on.
"""
import optuna

from alloclab.harness import optuna_compat


def test_optuna_private_api_used_by_the_tuner_still_exists():
    problems = optuna_compat.private_api_problems()
    assert not problems, (
        f"Optuna {optuna.__version__} (alloclab last checked Optuna {optuna_compat.TESTED_WITH}) lacks what "
        f"harness/optuna_compat.py uses: {'; '.join(problems)}. Adapt that module, then set TESTED_WITH.")


def test_optuna_version_is_not_older_than_the_one_checked():
    """An older Optuna than TESTED_WITH was never checked: the names may not exist there yet."""
    def key(v):
        return tuple(int(x) for x in v.split(".")[:3] if x.isdigit())

    assert key(optuna.__version__) >= key(optuna_compat.TESTED_WITH), (
        f"Optuna {optuna.__version__} is older than {optuna_compat.TESTED_WITH}, the version "
        f"harness/optuna_compat.py was checked with")
