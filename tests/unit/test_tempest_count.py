"""How ``tox -e tempest`` judges a run (tools/tempest/count.py): by each test method's
result in the subunit stream, never by ``tempest run``'s exit code."""

from __future__ import annotations

from typing import Any

from tools.tempest.count import key_lines, summarize, verdict

CLS = "tempest.api.volume.test_volumes_get.VolumesGetTest"
LISTED = [f"{CLS}.test_a[id-1,smoke]", f"{CLS}.test_b[id-2]",
          "tempest.api.volume.test_backup.BackupTest.test_c[id-3]",
          "tempest.api.volume.test_types.TypesTest.test_d[id-4]",
          "tempest.api.volume.test_types.TypesTest.test_e[id-5]"]


def result(status: str, **details: str) -> dict[str, Any]:
    return {"status": status, "details": details, "tags": []}


def test_a_clean_run_passes_and_counts_class_skips_per_method() -> None:
    tests = {LISTED[0]: result("success"), LISTED[1]: result("success"),
             "setUpClass (tempest.api.volume.test_backup.BackupTest)":
                 result("skip", reason="Cinder backup feature disabled"),
             LISTED[3]: result("skip", reason="no"), LISTED[4]: result("success")}
    summary = summarize(tests, LISTED)
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (3, 0, 2)
    assert summary["ran"] == 5
    assert verdict(summary) == 0


def test_one_failed_method_fails_the_run() -> None:
    tests = {LISTED[0]: result("success"), LISTED[1]: result(
        "fail", traceback="Traceback...\ntempest.lib.exceptions.NotFound: Object not found\n"
                          "Details: {'code': 404, 'message': 'No resource at /v3/p/types.'}\n")}
    summary = summarize(tests, LISTED[:2])
    assert summary["failed"] == 1
    assert summary["failures"][0]["key"] == [
        "tempest.lib.exceptions.NotFound: Object not found",
        "Details: {'code': 404, 'message': 'No resource at /v3/p/types.'}"]
    assert verdict(summary) == 1


def test_a_failed_class_set_up_blocks_its_methods_and_fails_the_run() -> None:
    tests = {LISTED[0]: result("success"),
             "setUpClass (tempest.api.volume.test_types.TypesTest)": result(
                 "fail", traceback="jsonschema.exceptions.ValidationError: 'x' was unexpected\n"
                                   "Failed validating 'additionalProperties' in schema\n")}
    summary = summarize(tests, [LISTED[0], LISTED[3], LISTED[4]])
    assert summary["failed"] == 0
    assert summary["blocked"] == [LISTED[3], LISTED[4]]
    assert len(summary["class_fixture_failures"]) == 1
    assert verdict(summary) == 1


def test_a_failed_class_tear_down_fails_the_run() -> None:
    tests = {LISTED[0]: result("success"),
             f"tearDownClass ({CLS})": result("fail", traceback="BadRequest: still has\n")}
    assert verdict(summarize(tests, LISTED[:1])) == 1


def test_a_listed_method_without_a_result_fails_the_run() -> None:
    summary = summarize({LISTED[0]: result("success")}, LISTED[:2])
    assert summary["never_ran"] == [LISTED[1]]
    assert verdict(summary) == 1


def test_a_run_where_nothing_passed_fails() -> None:
    tests = {"setUpClass (tempest.api.volume.test_backup.BackupTest)":
             result("skip", reason="off")}
    assert verdict(summarize(tests, [LISTED[2]])) == 1


def test_key_lines_name_the_schema_rule() -> None:
    lines = key_lines({"traceback": "Traceback\n  File x\njsonschema.exceptions.ValidationError:"
                                    " 'status_reason' was unexpected\n\nFailed validating "
                                    "'additionalProperties' in schema['properties']['volume']:\n"})
    assert lines[0].endswith("'status_reason' was unexpected")
    assert "additionalProperties" in lines[1]
