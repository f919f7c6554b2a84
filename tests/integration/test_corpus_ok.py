"""Legitimate programs are not broken: each ordinary data-processing job in
tests/corpus/ok/ runs under the default policy and returns its exact result."""
import json

import pytest

from conftest import REPO, run_job

CORPUS = sorted((REPO / "tests" / "corpus" / "ok").glob("*.json"))


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_job_succeeds(path):
    spec = json.loads(path.read_text())
    r = run_job(spec["job"], timeout=60)
    assert r.json is not None, r
    assert r.json["status"] == "ok", r
    assert r.json["error"] is None
    assert r.json["result"] == spec["expect_result"], r
    assert r.json["exit_code"] == 0, r
