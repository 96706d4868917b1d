"""Print, one line each, why a chaos run failed: its seed, the checks that failed with their
first failures, the replays that did not verify, whether it recovered, and any panic in the
processes' logs. A run that ended before writing its summary (a fault that could not be
carried out, a stack that did not start) is shown by the last lines of its output instead.

Usage: chaos_failures.py CHAOS_DIR
Reads CHAOS_DIR/summary.json, CHAOS_DIR/chaos.out (the run's output) and the logs under
CHAOS_DIR. scripts/test.sh prints these lines last, so a CI that shows only the end of its
output still shows what the chaos run found and the seed that repeats it.
"""
import json
import pathlib
import sys

OUTPUT_LINES = 20
PANICS_SHOWN = 5

run_dir = pathlib.Path(sys.argv[1])


def last_lines(path, count):
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except OSError as error:
        return [f"({error})"]


try:
    summary = json.loads((run_dir / "summary.json").read_text())
except (OSError, ValueError) as error:
    summary = None
    print(f"no chaos summary ({error}); the run's last {OUTPUT_LINES} lines:")
    for line in last_lines(run_dir / "chaos.out", OUTPUT_LINES):
        print(f"  | {line}")

if summary is not None:
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

panics = []
for log in sorted(run_dir.rglob("*.log")):
    for line in last_lines(log, 100_000):
        if "panicked at" in line:
            panics.append(f"{log.relative_to(run_dir)}: {line.strip()[:300]}")
for panic in panics[:PANICS_SHOWN]:
    print(f"panic in {panic}")
if len(panics) > PANICS_SHOWN:
    print(f"... and {len(panics) - PANICS_SHOWN} more panics")
