#!/usr/bin/python3
"""Plot benchmarks/results/links.json (mycelium-bench-links) with matplotlib.

usage: /usr/bin/python3 benchmarks/plot_links.py [results/links.json] [results/links.svg]

Top rows: median round-trip time (bars, log scale) and p99 (black tick) per
payload size and path, one panel per link kind and scenario (config@pin).
Bottom row: one-way throughput of 64-byte messages, raw socket vs bus.
Uses Debian's matplotlib (python3-matplotlib), hence /usr/bin/python3.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "links.json")
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "results", "links.svg")

with open(src) as f:
    data = json.load(f)

PATHS = ["raw", "raw-spin", "bus", "caf", "zmq"]
COLORS = {"raw": "#4c72b0", "raw-spin": "#9fb4d9", "bus": "#dd8452", "caf": "#55a868",
          "zmq": "#8172b2", "raw-1write": "#9fb4d9"}
scenarios = data["scenarios"]
kinds = ["unix", "tcp"]


def size_label(n):
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


ncol = len(scenarios)
# one y range for all latency panels, so that they compare at a glance
lat_values = [row[p][q] / 1000 for sc in scenarios for k in sc["kinds"] for row in k["latency"]
              for p in PATHS if p in row for q in ("median_ns", "p99_ns")]
handles = {}
fig, axes = plt.subplots(3, ncol, figsize=(4.2 * ncol, 11), squeeze=False)
for c, sc in enumerate(scenarios):
    for r, kind in enumerate(kinds):
        ax = axes[r][c]
        k = next((x for x in sc["kinds"] if x["kind"] == kind), None)
        if k is None or not k["latency"]:
            ax.set_visible(False)
            continue
        sizes = [row["size"] for row in k["latency"]]
        present = [p for p in PATHS if any(p in row for row in k["latency"])]
        width = 0.8 / max(len(present), 1)
        for i, p in enumerate(present):
            xs, med, p99 = [], [], []
            for j, row in enumerate(k["latency"]):
                if p in row:
                    xs.append(j + (i - (len(present) - 1) / 2) * width)
                    med.append(row[p]["median_ns"] / 1000)
                    p99.append(row[p]["p99_ns"] / 1000)
            handles[p] = ax.bar(xs, med, width, color=COLORS[p], label=p)
            ax.scatter(xs, p99, marker="_", color="black", s=60, zorder=3)
        ax.set_yscale("log")
        if lat_values:
            ax.set_ylim(min(lat_values) * 0.7, max(lat_values) * 1.5)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([size_label(s) for s in sizes])
        ax.set_title(f"{kind}, {sc['name']}", fontsize=10)
        if c == 0:
            ax.set_ylabel("round trip, µs (bar: median, tick: p99)")
        ax.grid(axis="y", which="both", alpha=0.3)
    ax = axes[2][c]
    variants = [("raw", "raw (64 KiB writes)"), ("bus", "bus"), ("caf", "caf (BASP)")]
    labels = [kind for kind in kinds
              if any(x["kind"] == kind and x["throughput"] for x in sc["kinds"])]
    if labels:
        width = 0.8 / len(variants)
        for i, (v, label) in enumerate(variants):
            xs, ys = [], []
            for j, kind in enumerate(labels):
                k = next(x for x in sc["kinds"] if x["kind"] == kind)
                if v in k["throughput"]:
                    xs.append(j + (i - 1) * width)
                    ys.append(k["throughput"][v]["msgs_per_s_median"] / 1e6)
            ax.bar(xs, ys, width, color=COLORS[v], label=label)
            if v == "bus":
                for x, y in zip(xs, ys):
                    ax.annotate(f"{y:.2f} M", (x, y), ha="center", va="bottom", fontsize=8)
        ax.axhline(2.0, color="red", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_title(f"one-way 64 B, {sc['name']}", fontsize=10)
        if c == 0:
            ax.set_ylabel("M msg/s (red: 2 M goal)")
            ax.legend(fontsize=8, loc="upper right")
        ax.grid(axis="y", which="both", alpha=0.3)
    else:
        ax.set_visible(False)

fig.suptitle(f"mycelium-bench-links {data['started']}: round trips (not one-way), "
             f"{data['machine']['hardware_threads']} vCPUs", fontsize=11)
fig.legend([handles[p] for p in PATHS if p in handles], [p for p in PATHS if p in handles],
           loc="upper right", ncol=len(handles), fontsize=9)
fig.tight_layout(rect=(0, 0, 1, 0.95))
fig.savefig(dst)
print(f"wrote {dst}")
