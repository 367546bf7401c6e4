"""Judge a Tempest run by its subunit stream, not by ``tempest run``'s exit code (with
``--subunit`` it exits 0 even when tests fail).

    python count.py RUN.subunit [--listed LIST] [--json OUT]

Prints the failing tests with the key line of each error, then one closing line
``tempest: N passed, N failed, N skipped`` (plus class set-up failures and tests that
never ran when there are any), and exits 1 when anything failed, a class set-up or
tear-down failed, a listed test never ran, or nothing passed. Runs in the Tempest
virtualenv (it needs python-subunit and testtools).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

FIXTURE = re.compile(r"^(setUpClass|tearDownClass) \((?P<cls>[\w.]+)\)$")
PASSED, FAILED, SKIPPED = {"success", "xfail"}, {"fail", "uxsuccess"}, {"skip"}


def read_stream(path: Path) -> dict[str, dict[str, Any]]:
    """test id -> {"status", "details" (name -> text)} from a subunit v2 stream."""
    import subunit
    import testtools

    tests: dict[str, dict[str, Any]] = {}

    def collect(test: dict[str, Any]) -> None:
        status = test["status"]
        if status in ("exists", "inprogress", None):
            return
        details = {}
        for name, content in test["details"].items():
            try:
                details[name] = content.as_text()
            except (UnicodeDecodeError, ValueError):  # a binary attachment
                details[name] = f"<{content.content_type} not shown>"
        tests[test["id"]] = {"status": status, "details": details,
                             "tags": sorted(test.get("tags") or ())}

    with open(path, "rb") as stream:
        case = subunit.ByteStreamToStreamResult(stream, non_subunit_name="stdout")
        result = testtools.StreamToDict(collect)
        result.startTestRun()
        try:
            case.run(result)
        finally:
            result.stopTestRun()
    return tests


def base_id(test_id: str) -> str:
    """A test id without its ``[attrs,id-...]`` suffix."""
    return test_id.split("[", 1)[0]


def key_lines(details: dict[str, str]) -> list[str]:
    """The lines of a traceback that say what went wrong: the exception and its details
    (status code, schema message)."""
    text = details.get("traceback", "") or "\n".join(details.values())
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    keep: list[str] = []
    for index, line in enumerate(lines):
        if re.match(r"^[\w.]+(Error|Exception|NotFound|BadRequest|Conflict|Forbidden|"
                    r"Unauthorized|ServerFault|Timeout|TimeoutException|Failure|"
                    r"UnexpectedResponseCode|InvalidHTTPResponseBody|"
                    r"UnexpectedContentType|RestClientException|OverLimit|"
                    r"InvalidContentType|NotImplemented|UnprocessableEntity|Gone)\b.*:",
                    line.strip()) or line.startswith("Details:") or \
                "Failed validating" in line or line.startswith("AssertionError") or \
                line.startswith("testtools.matchers") or "MismatchError" in line:
            keep.append(line.strip()[:400])
        if len(keep) >= 4:
            break
        if index == len(lines) - 1 and not keep:
            keep.append(line.strip()[:400])
    return keep


def class_of(test_id: str) -> str:
    return base_id(test_id).rsplit(".", 1)[0]


def summarize(tests: dict[str, dict[str, Any]], listed: list[str] | None) -> dict[str, Any]:
    """Counts per test method. A class skipped in its set-up (a feature flag, a
    microversion) skips each of its listed methods; the methods of a class whose set-up
    failed are "blocked"; a listed method with no result at all "never ran"."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures, fixtures, skips = [], [], []
    skipped_classes: dict[str, str] = {}
    failed_classes: set[str] = set()
    for test_id, test in sorted(tests.items()):
        status, fixture = test["status"], FIXTURE.match(test_id)
        if fixture:
            if status in FAILED:
                fixtures.append({"id": test_id, "class": fixture["cls"],
                                 "key": key_lines(test["details"]),
                                 "traceback": test["details"].get("traceback", "")})
                if fixture.group(1) == "setUpClass":
                    failed_classes.add(fixture["cls"])
            elif status in SKIPPED:
                skipped_classes[fixture["cls"]] = test["details"].get("reason", "").strip()
            continue
        if status in PASSED:
            counts["passed"] += 1
        elif status in SKIPPED:
            counts["skipped"] += 1
            skips.append({"id": test_id, "reason": test["details"].get("reason", "").strip()})
        else:
            counts["failed"] += 1
            failures.append({"id": test_id, "key": key_lines(test["details"]),
                             "traceback": test["details"].get("traceback", "")})
    seen = {base_id(test_id) for test_id in tests}
    blocked, never = [], []
    for test_id in sorted(listed or []):
        if base_id(test_id) in seen:
            continue
        cls = class_of(test_id)
        if cls in skipped_classes:
            counts["skipped"] += 1
            skips.append({"id": test_id, "reason": skipped_classes[cls]})
        elif cls in failed_classes:
            blocked.append(test_id)
        else:
            never.append(test_id)
    return {"ran": counts["passed"] + counts["failed"] + counts["skipped"], **counts,
            "class_fixture_failures": fixtures, "blocked": blocked, "never_ran": never,
            "failures": failures, "skips": skips}


def verdict(summary: dict[str, Any]) -> int:
    """0 only for a clean run: nothing failed, no class fixture failed, nothing blocked
    or left unrun, and at least one test passed."""
    clean = (summary["failed"] == 0 and not summary["class_fixture_failures"]
             and not summary["blocked"] and not summary["never_ran"]
             and summary["passed"] > 0)
    return 0 if clean else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stream", type=Path)
    parser.add_argument("--listed", type=Path,
                        help="the test ids the run was asked for (tempest run -l)")
    parser.add_argument("--json", type=Path, help="write the whole summary here")
    args = parser.parse_args(argv)
    listed = None
    if args.listed:
        listed = [line.strip() for line in args.listed.read_text().splitlines()
                  if line.strip().startswith("tempest.")]
    summary = summarize(read_stream(args.stream), listed)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    for fixture in summary["class_fixture_failures"]:
        print(f"CLASS FAILED {fixture['id']}")
        for line in fixture["key"]:
            print(f"    {line}")
    for failure in summary["failures"]:
        print(f"FAILED {failure['id']}")
        for line in failure["key"]:
            print(f"    {line}")
    for test_id in summary["never_ran"]:
        print(f"NEVER RAN {test_id}")
    fixtures, never = len(summary["class_fixture_failures"]), len(summary["never_ran"])
    blocked = len(summary["blocked"])
    line = (f"tempest: {summary['passed']} passed, {summary['failed']} failed, "
            f"{summary['skipped']} skipped")
    extra = []
    if fixtures:
        extra.append(f"{fixtures} class fixtures failed")
    if blocked:
        extra.append(f"{blocked} methods of those classes blocked")
    if never:
        extra.append(f"{never} listed methods never ran")
    print(f"ran {summary['ran']}" + (f" ({'; '.join(extra)})" if extra else ""))
    print(line)
    return verdict(summary)


if __name__ == "__main__":
    sys.exit(main())
