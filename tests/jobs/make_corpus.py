#!/usr/bin/env python3
"""Writes the hostile-job corpus under tests/jobs/invalid/ and expected.json
(file -> [error.code, reason]). Re-run after editing CASES; the files are
committed so the corpus is also usable by fuzzers as seeds."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "invalid"
BIG = 65536  # default policy max_code_bytes

CASES = {
    # not JSON, or not one JSON object
    "empty.json": (b"", "INVALID_JOB", "empty_job"),
    "whitespace.json": (b"   \n\t ", "INVALID_JOB", "malformed_json:"),
    "truncated.json": (b'{"code": "print(1)"', "INVALID_JOB", "malformed_json:truncated JSON"),
    "truncated_string.json": (b'{"code": "print(1)', "INVALID_JOB", "malformed_json:"),
    "array.json": (b'[{"code": "print(1)"}]', "INVALID_JOB", "not_an_object"),
    "string.json": (b'"print(1)"', "INVALID_JOB", "not_an_object"),
    "null.json": (b"null", "INVALID_JOB", "not_an_object"),
    "number.json": (b"42\n", "INVALID_JOB", "not_an_object"),
    "trailing_garbage.json": (b'{"code": "print(1)"} trailing', "INVALID_JOB", "malformed_json:"),
    "two_objects.json": (b'{"code": "a"}{"code": "b"}', "INVALID_JOB", "malformed_json:"),
    "single_quotes.json": (b"{'code': 'print(1)'}", "INVALID_JOB", "malformed_json:"),
    "trailing_comma.json": (b'{"code": "print(1)",}', "INVALID_JOB", "malformed_json:"),
    "comment.json": (b'{"code": "print(1)" /* hi */}', "INVALID_JOB", "malformed_json:"),
    "nan.json": (b'{"code": "x", "input": NaN}', "INVALID_JOB", "non_finite_number"),
    "infinity.json": (b'{"code": "x", "input": [1, -Infinity]}', "INVALID_JOB", "non_finite_number"),
    "deep_nesting.json": (b'{"code": "x", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "INVALID_JOB", "malformed_json:"),
    # encoding
    "invalid_utf8.json": (b'{"code": "print(\'\xff\xfe\')"}', "INVALID_JOB", "invalid_utf8"),
    "overlong_utf8.json": (b'{"code": "\xc0\xaf"}', "INVALID_JOB", "invalid_utf8"),
    "surrogate_utf8.json": (b'{"code": "\xed\xa0\x80"}', "INVALID_JOB", "invalid_utf8"),
    "raw_nul.json": (b'{"code": "print(1)\x00"}', "INVALID_JOB", "nul_byte"),
    "escaped_nul_code.json": (b'{"code": "print(1)\\u0000import os"}', "INVALID_JOB", "code:nul_byte"),
    "lone_surrogate_escape.json": (b'{"code": "\\ud800"}', "INVALID_JOB", "invalid_unicode_escape"),
    "lone_low_surrogate.json": (b'{"code": "x", "id": "\\udc00\\ud800"}', "INVALID_JOB", "invalid_unicode_escape"),
    "paired_surrogate_ok_but_unknown_key.json": (b'{"code": "x", "\\ud83d\\ude00": 1}', "INVALID_JOB", "unknown_key:\U0001F600"),
    "utf16_bom.json": ('{"code": "print(1)"}'.encode("utf-16"), "INVALID_JOB", ""),
    # keys
    "unknown_key.json": ({"code": "print(1)", "timeout": 5}, "INVALID_JOB", "unknown_key:timeout"),
    "missing_code.json": ({"id": "x"}, "INVALID_JOB", "missing_key:code"),
    "empty_code.json": ({"code": ""}, "INVALID_JOB", "code_empty"),
    "code_not_string.json": ({"code": ["print(1)"]}, "INVALID_JOB", "code:expected_string"),
    "code_too_long.json": ({"code": "#" * (BIG + 1)}, "INVALID_JOB", "code_too_long"),
    "id_not_string.json": ({"code": "x", "id": 5}, "INVALID_JOB", "id:expected_string"),
    "id_too_long.json": ({"code": "x", "id": "i" * 300}, "INVALID_JOB", "id_too_long"),
    "language_ruby.json": ({"code": "puts 1", "language": "ruby"}, "LANGUAGE_DENIED", "language_not_supported:ruby"),
    "language_python2.json": ({"code": "print 1", "language": "python2"}, "LANGUAGE_DENIED", "language_not_supported:python2"),
    "language_not_string.json": ({"code": "x", "language": 3}, "INVALID_JOB", "language:expected_string"),
    "files_slash.json": ({"code": "x", "files": {"a/b.txt": "x"}}, "INVALID_JOB", "files:bad_name"),
    "files_dotdot.json": ({"code": "x", "files": {"..": "x"}}, "INVALID_JOB", "files:bad_name"),
    "files_parent.json": ({"code": "x", "files": {"../../etc/passwd": "x"}}, "INVALID_JOB", "files:bad_name"),
    "files_absolute.json": ({"code": "x", "files": {"/etc/passwd": "x"}}, "INVALID_JOB", "files:bad_name"),
    "files_empty_name.json": ({"code": "x", "files": {"": "x"}}, "INVALID_JOB", "files:bad_name"),
    "files_dot.json": ({"code": "x", "files": {".": "x"}}, "INVALID_JOB", "files:bad_name"),
    "files_not_object.json": ({"code": "x", "files": ["a.txt"]}, "INVALID_JOB", "files:expected_object"),
    "files_binary_value.json": ({"code": "x", "files": {"a.bin": 5}}, "INVALID_JOB", "files:expected_string"),
    "files_nul_content.json": ({"code": "x", "files": {"a.txt": "a\u0000b"}}, "INVALID_JOB", "files:nul_byte"),
    "limits_not_object.json": ({"code": "x", "limits": 5}, "INVALID_JOB", "limits:expected_object"),
    "limits_unknown.json": ({"code": "x", "limits": {"timeout": 5}}, "INVALID_JOB", "limits:unknown_key:timeout"),
    "limits_negative.json": ({"code": "x", "limits": {"wall_ms": -1}}, "INVALID_JOB", "limits:wall_ms:out_of_range"),
    "limits_float.json": ({"code": "x", "limits": {"memory_mb": 1.5}}, "INVALID_JOB", "limits:memory_mb:expected_integer"),
    "limits_string.json": ({"code": "x", "limits": {"pids": "10"}}, "INVALID_JOB", "limits:pids:expected_integer"),
    "limits_huge.json": ({"code": "x", "limits": {"wall_ms": 10**30}}, "INVALID_JOB", "limits:wall_ms:"),
    "limits_int64_overflow.json": ({"code": "x", "limits": {"stdout_bytes": 2**63}}, "INVALID_JOB", "limits:stdout_bytes:"),
    "imports_not_array.json": ({"code": "x", "imports": "os"}, "INVALID_JOB", "imports:expected_array"),
    "imports_path.json": ({"code": "x", "imports": ["../os"]}, "INVALID_JOB", "imports:bad_name:../os"),
    "imports_empty_name.json": ({"code": "x", "imports": [""]}, "INVALID_JOB", "imports:empty_name"),
    "packages_option.json": ({"code": "x", "packages": ["--index-url=http://evil"]}, "INVALID_JOB", "packages:bad_name:"),
    "packages_not_strings.json": ({"code": "x", "packages": [{"name": "numpy"}]}, "INVALID_JOB", "packages:expected_string"),
    "schema_not_object.json": ({"code": "x", "output_schema": "number"}, "INVALID_JOB", "output_schema:expected_object"),
    "schema_unsupported.json": ({"code": "x", "output_schema": {"type": "string", "pattern": "^a"}}, "INVALID_JOB",
                                "output_schema:$: unsupported keyword 'pattern'"),
    "schema_bad_type.json": ({"code": "x", "output_schema": {"type": "float"}}, "INVALID_JOB",
                             "output_schema:$: unknown type 'float'"),
    "mode_unknown.json": ({"code": "x", "mode": "shell"}, "INVALID_JOB", "mode:expected_inline_code_or_python_exec_tool"),
}


def main():
    HERE.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (body, code, reason) in sorted(CASES.items()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        (HERE / name).write_bytes(data)
        expected[name] = [code, reason]
    (HERE.parent / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
