"""Each kind of bad input: exit 2, exactly one line on stderr, no traceback, no output file."""
import pytest

from bad_input_cases import cases, make_files
from alloclab.harness.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("idx", range(36))
def test_bad_input(files, idx, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    all_cases = cases(files)
    assert len(all_cases) == 36
    what, argv = all_cases[idx]
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert rc == 2, (what, cap.err)
    assert len(err) == 1 and "Traceback" not in cap.err, (what, cap.err)
    assert "error" in err[0], (what, err)
    assert not list(tmp_path.rglob("*.parquet")), what
