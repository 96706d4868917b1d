#!/usr/bin/env python3
"""Where orders spent their time, hop by hop, from their records alone.

usage: hops.py DUMP.jsonl...   (lines of `scripts/consume <topic>`)

Every record's timestamp is when it was produced, and every record of an order's saga
names the order's correlation: an event in its envelope's `correlation_id`, a command a
service derived in its `correlation_id` header, and the command that began the saga (HTTP,
kcat) by being it, under its `command_id`. Per order that reached a final event, the
records are put in time order and each step from one record to the next is a hop; the
table gives, per kind of hop, how many orders took it and the median and 90th percentile.
"""
import collections
import json
import statistics
import sys

FINAL = ("OrderConfirmed", "OrderCancelled")


def records(paths):
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as dump:
            for line in dump:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                headers = record.get("headers") or {}
                value = record.get("value")
                fields = value if isinstance(value, dict) else {}
                correlation = headers.get("correlation_id") or fields.get("correlation_id") or fields.get("command_id")
                if not correlation or not isinstance(record.get("timestamp"), int):
                    continue
                kind = headers.get("event_type") or fields.get("type") or "?"
                yield correlation, record["timestamp"], f'{record.get("topic")} {kind}'


def percentile(sorted_values, share):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def main(paths):
    by_order = collections.defaultdict(list)
    for correlation, timestamp, label in records(paths):
        by_order[correlation].append((timestamp, label))
    hops = collections.defaultdict(list)
    position = collections.defaultdict(list)
    totals = collections.defaultdict(list)
    for steps in by_order.values():
        steps.sort()
        final = next(((at, label) for at, label in steps if label.split(" ")[-1] in FINAL), None)
        if final is None:
            continue
        totals[final[1].split(" ")[-1]].append(final[0] - steps[0][0])
        taken = [step for step in steps if step[0] <= final[0]]
        for index, ((before, start), (after, end)) in enumerate(zip(taken, taken[1:])):
            hops[(start, end)].append(after - before)
            position[(start, end)].append(index)
    orders = sum(len(values) for values in totals.values())
    if orders == 0:
        print("no order with a final event in these records")
        return 1
    print(f"{orders} orders; first record -> final event:")
    for final, values in sorted(totals.items()):
        values.sort()
        print(f"  {final:<15} {len(values):6d}  p50 {statistics.median(values):7.0f} ms  p90 {percentile(values, 0.9):7.0f} ms  p99 {percentile(values, 0.99):7.0f} ms")
    print(f"\n{'orders':>7} {'p50 ms':>7} {'p90 ms':>7}  hop (one record to the next of the same order)")
    common = [(hop, values) for hop, values in hops.items() if len(values) * 20 >= orders]
    common.sort(key=lambda item: statistics.median(position[item[0]]))
    for (start, end), values in common:
        values.sort()
        print(f"{len(values):7d} {statistics.median(values):7.0f} {percentile(values, 0.9):7.0f}  {start} -> {end}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
