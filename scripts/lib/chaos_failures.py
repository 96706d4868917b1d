"""Print, one line each, why a chaos run failed: its seed, the checks that failed with their
first failures, the replays that did not verify and whether it recovered.

Usage: chaos_failures.py SUMMARY_JSON
scripts/test.sh prints these lines last, so a CI that shows only the end of its output still
shows what the chaos run found and the seed that repeats it.
"""
import json
import sys

try:
    summary = json.load(open(sys.argv[1]))
except (OSError, ValueError) as error:
    print(f"no chaos summary ({error})")
    sys.exit(0)

print(f"seed {summary.get('seed')} (CHAOS_SEED={summary.get('seed')} repeats it)")
recovery = summary.get("recovery_s")
print("recovered after %.1f s" % recovery if recovery is not None else "NOT recovered within the settle time")
for check in summary.get("checks", []):
    if not check.get("passed"):
        print(f"check {check.get('name')} FAILED: {check.get('figures')}")
        failures = check.get("failures", [])
        for failure in failures[:5]:
            print(f"  - {failure}")
        if len(failures) > 5:
            print(f"  ... and {len(failures) - 5} more")
for replay in summary.get("replay_verified", []):
    if not replay.get("passed"):
        print(f"replay --verify {replay.get('service')} FAILED (its log: {replay.get('service')}-replay-verify.log)")
