"""Each kind of bad input: exit 2, exactly one line on stderr saying what the case expects, no
traceback, no output file; and docs/bad-input.md is the table these cases generate."""
import pytest

from bad_input_cases import CASES, DOC, cases, make_files, render
from alloclab.harness.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("idx", range(len(CASES)), ids=[what for what, _, _ in CASES])
def test_bad_input(files, idx, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    what, argv, expect = cases(files)[idx]
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert rc == 2, (what, cap.err)
    assert len(err) == 1 and "Traceback" not in cap.err, (what, cap.err)
    assert "error" in err[0], (what, err)
    assert expect in err[0], (what, expect, err[0])
    assert not list(tmp_path.rglob("*.parquet")), what


def test_docs_table_is_the_one_the_cases_generate():
    assert DOC.is_file(), f"{DOC} missing: .venv/bin/python tests/bad_input_cases.py > docs/bad-input.md"
    assert DOC.read_text() == render(), (
        "docs/bad-input.md differs from the cases: .venv/bin/python tests/bad_input_cases.py > docs/bad-input.md")
