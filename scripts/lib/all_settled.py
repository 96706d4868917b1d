"""Exit 0 when a k6 summary of load/orders.js shows orders placed and every one terminal.

Usage: all_settled.py SUMMARY_JSON
"""
import json
import sys

metrics = json.load(open(sys.argv[1]))["metrics"]


def count(name):
    return int(metrics.get(name, {}).get("values", {}).get("count", 0))


placed = count("orders_placed")
terminal = count("orders_confirmed") + count("orders_cancelled")
print(f"load smoke: {placed} orders placed, {terminal} terminal, {count('orders_not_terminal')} not terminal")
sys.exit(0 if placed > 0 and terminal == placed else 1)
