"""Warm jobs under the default policy take the guard and module proxies their
zygote built once (pycell_job.prepare_policy): each job must still get its
own state through them, and the proxies must behave as a job's own would."""
import pytest

from test_warm import WarmServer


@pytest.fixture(scope="module")
def server():
    s = WarmServer()
    yield s
    s.stop()


def result(server, code, **kw):
    status, doc = server.run({"code": code, **kw})
    assert status == 200 and doc["status"] == "ok", doc
    return doc["result"]


def test_random_through_the_prepared_proxy_is_reseeded_per_job(server):
    values = [result(server, "import random\nresult = [random.random(), random.getrandbits(64)]") for _ in range(4)]
    assert len(set(map(repr, values))) == 4


def test_prepared_proxies_stay_read_only_and_intact_for_the_next_job(server):
    status, doc = server.run({"code": "import json\njson.dumps = None"})
    assert doc["error"]["code"] == "RUNTIME_ERROR" and "read-only" in doc["error"]["message"]
    assert result(server, "import json\nresult = json.dumps([1])") == "[1]"


def test_submodules_through_prepared_proxies(server):
    code = ("import collections.abc\nfrom collections import abc, OrderedDict\nimport statistics\n"
            "result = [collections.abc.Mapping.__name__, abc.Sequence.__name__, hasattr(statistics, 'sys'),"
            " list(OrderedDict(a=1))]")
    assert result(server, code) == ["Mapping", "Sequence", False, ["a"]]


def test_open_and_input_data_are_the_jobs_own(server):
    # the prepared guard's open() checks this job's paths; input_data is this job's
    assert result(server, "open('a', 'w').write('x')\nresult = [open('a').read(), input_data]", input=[1]) == ["x", [1]]
    status, doc = server.run({"code": "open('/etc/passwd')"})
    assert doc["error"]["code"] == "RUNTIME_ERROR" and "limited to /workspace" in doc["error"]["message"]
    assert result(server, "result = input_data") is None
