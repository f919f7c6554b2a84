"""The hostile-job corpus (tests/jobs/invalid, written by
tests/jobs/make_corpus.py): every file is refused with INVALID_JOB or
LANGUAGE_DENIED, exit status 2, a well-formed result, and no crash.
`make test-asan` runs this against build/asan/pycell; any sanitizer
report on stderr fails the test."""
import json
import subprocess

import pytest

from conftest import PYCELL, REPO

CORPUS = REPO / "tests" / "jobs" / "invalid"
EXPECTED = json.loads((REPO / "tests" / "jobs" / "expected.json").read_text())
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:")


def test_corpus_is_big_enough():
    assert len(list(CORPUS.iterdir())) >= 30
    assert set(EXPECTED) == {p.name for p in CORPUS.iterdir()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_job_refused(name):
    want_code, want_reason = EXPECTED[name]
    for argv, stdin in (([str(CORPUS / name)], None), (["-"], (CORPUS / name).read_bytes())):
        p = subprocess.run([PYCELL, "run", *argv], input=stdin, capture_output=True, timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        assert not any(s in err for s in SANITIZER), err
        assert p.returncode == 2, (p.returncode, p.stdout[:500], err)
        res = json.loads(p.stdout.decode("utf-8"))
        assert res["status"] == "error"
        assert res["error"]["code"] == want_code, res["error"]
        assert res["error"]["details"]["reason"].startswith(want_reason), res["error"]
        assert res["result"] is None and res["exit_code"] is None
