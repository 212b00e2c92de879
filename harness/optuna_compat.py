"""What alloclab takes from Optuna beyond its stable public API, in one place.

The tuner must leave no trial RUNNING after its process was killed (a dead
trial would hold the study's count of finished trials back forever). Optuna
fails trials whose heartbeat went stale (``fail_stale_trials``: public, but
marked experimental), yet a process killed within its first heartbeat
interval never beat at all, and no public call lists such trials. So this
module reads:

- ``optuna.storages._rdb.models.TrialModel``: Optuna's own trials table, with
  its ``heartbeats`` relationship (private module);
- ``Study._study_id``: the study's row id in that table (private attribute);
- ``RDBStorage.scoped_session``: the storage's SQLAlchemy session factory
  (set in its ``__init__``, not documented).

Any Optuna release may change these. ``private_api_problems()`` says which
are gone; ``tests/test_optuna_compat.py`` runs it against the installed
Optuna and fails naming that version. ``TESTED_WITH`` is the version they
were last checked on: raise it when a newer Optuna passes that test.
"""
from __future__ import annotations

import datetime as dt
import warnings

TESTED_WITH = "5.0.0"

_TRIAL_COLUMNS = ("trial_id", "study_id", "state")   # queried: must be mapped columns
_TRIAL_READ = ("datetime_start",)                     # only read from a row: any attribute


def private_api_problems() -> list[str]:
    """The private names this module uses that the installed Optuna lacks (empty: all there)."""
    import optuna

    problems = []
    try:
        from optuna.storages._rdb import models
    except ImportError as e:
        return [f"optuna.storages._rdb.models cannot be imported ({e})"]
    trial_model = getattr(models, "TrialModel", None)
    if trial_model is None:
        problems.append("optuna.storages._rdb.models.TrialModel is gone")
    else:
        import sqlalchemy

        mapper = sqlalchemy.inspect(trial_model)
        problems += [f"TrialModel has no column {c!r}" for c in _TRIAL_COLUMNS if c not in mapper.columns]
        problems += [f"TrialModel has no attribute {a!r}" for a in _TRIAL_READ if not hasattr(trial_model, a)]
        if "heartbeats" not in mapper.relationships:
            problems.append("TrialModel has no 'heartbeats' relationship")
    if not hasattr(optuna.storages, "fail_stale_trials"):
        problems.append("optuna.storages.fail_stale_trials is gone")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage("sqlite://", heartbeat_interval=60, grace_period=120)
    if not callable(getattr(storage, "scoped_session", None)):
        problems.append("RDBStorage has no scoped_session")
    study = optuna.create_study(storage=storage)
    if not isinstance(getattr(study, "_study_id", None), int):
        problems.append("Study has no integer _study_id")
    return problems


def fail_stale_trials(study) -> None:
    """Optuna's own check: fail the RUNNING trials whose heartbeat went stale."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # marked experimental in Optuna, like the heartbeat itself
        optuna.storages.fail_stale_trials(study)


def beatless_running_trials(study, storage) -> list[tuple[int, dt.datetime | None]]:
    """(trial id, start time) of the study's RUNNING trials in ``storage`` (an
    RDBStorage) that never recorded a heartbeat."""
    import optuna
    from optuna.storages._rdb import models

    with storage.scoped_session() as session:
        rows = (session.query(models.TrialModel)
                .filter(models.TrialModel.state == optuna.trial.TrialState.RUNNING)
                .filter(models.TrialModel.study_id == study._study_id).all())
        return [(r.trial_id, r.datetime_start) for r in rows if len(r.heartbeats) == 0]
