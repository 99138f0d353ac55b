#!/usr/bin/python3
"""Plot benchmarks/results/shm.json (mycelium-bench-shm) with matplotlib.

usage: /usr/bin/python3 benchmarks/plot_shm.py [results/shm.json] [results/shm.svg]

Top row: median round-trip time (bars, log scale) and p99 (black tick) per
payload size and path, one panel per scenario (config/threads@pin).
Middle row: bus/raw ratio of the medians per size, busy-poll and
spin-then-block, against the 1.3 goal.
Bottom row: one-way throughput of 64-byte messages, raw ring vs bus.
Uses Debian's matplotlib (python3-matplotlib), hence /usr/bin/python3.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "shm.json")
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "results", "shm.svg")

with open(src) as f:
    data = json.load(f)

PATHS = ["raw-busy", "bus-busy", "raw-hybrid", "bus-hybrid", "bipc", "bipc-spin", "caf"]
COLORS = {"raw-busy": "#4c72b0", "bus-busy": "#dd8452", "raw-hybrid": "#9fb4d9",
          "bus-hybrid": "#f1b88c", "bipc": "#8172b2", "bipc-spin": "#c2b5e0",
          "caf": "#55a868"}
scenarios = data["scenarios"]


def size_label(n):
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


ncol = len(scenarios)
tput_values = [v["msgs_per_s_median"] / 1e6 for sc in scenarios
               for v in sc["throughput"].values()] + [10.0]
lat_values = [row[p][q] / 1000 for sc in scenarios for row in sc["latency"]
              for p in PATHS if p in row for q in ("median_ns", "p99_ns")]
handles = {}
fig, axes = plt.subplots(3, ncol, figsize=(6.5 * ncol, 12), squeeze=False)
for c, sc in enumerate(scenarios):
    ax = axes[0][c]
    rows = sc["latency"]
    if rows:
        sizes = [row["size"] for row in rows]
        present = [p for p in PATHS if any(p in row for row in rows)]
        width = 0.85 / max(len(present), 1)
        for i, p in enumerate(present):
            xs, med, p99 = [], [], []
            for j, row in enumerate(rows):
                if p in row:
                    xs.append(j + (i - (len(present) - 1) / 2) * width)
                    med.append(row[p]["median_ns"] / 1000)
                    p99.append(row[p]["p99_ns"] / 1000)
            handles[p] = ax.bar(xs, med, width, color=COLORS[p], label=p)
            ax.scatter(xs, p99, marker="_", color="black", s=30, zorder=3)
        ax.set_yscale("log")
        if lat_values:
            ax.set_ylim(min(lat_values) * 0.7, max(lat_values) * 1.5)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([size_label(s) for s in sizes])
        ax.set_title(f"round trips, {sc['name']}", fontsize=10)
        if c == 0:
            ax.set_ylabel("round trip, µs (bar: median, tick: p99)")
        ax.grid(axis="y", which="both", alpha=0.3)

        ax = axes[1][c]
        for key, label, color in (
                ("ratio_median_bus_busy_over_raw_busy", "bus/raw, busy-poll", COLORS["bus-busy"]),
                ("ratio_median_bus_hybrid_over_raw_hybrid", "bus/raw, spin-then-block",
                 COLORS["bus-hybrid"])):
            ys = [row[key] for row in rows]
            ax.plot(range(len(sizes)), ys, marker="o", color=color, label=label)
        ax.axhline(1.3, color="red", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylim(bottom=1.0)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([size_label(s) for s in sizes])
        ax.set_title(f"bus ÷ raw ring (medians), {sc['name']}", fontsize=10)
        if c == 0:
            ax.set_ylabel("ratio (red: 1.3 goal)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    else:
        axes[0][c].set_visible(False)
        axes[1][c].set_visible(False)

    ax = axes[2][c]
    tput = sc["throughput"]
    variants = [v for v in ["raw-busy", "bus-busy", "raw-hybrid", "bus-hybrid", "caf"]
                if v in tput]
    if variants:
        ys = [tput[v]["msgs_per_s_median"] / 1e6 for v in variants]
        bars = ax.bar(range(len(variants)), ys, 0.6, color=[COLORS[v] for v in variants])
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:.2f} M", (b.get_x() + b.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=8)
        ax.axhline(10.0, color="red", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylim(min(tput_values) * 0.7, max(tput_values) * 1.5)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants)
        ax.set_title(f"one-way 64 B, {sc['name']}", fontsize=10)
        if c == 0:
            ax.set_ylabel("M msg/s, median of rounds (red: 10 M goal)")
        ax.grid(axis="y", which="both", alpha=0.3)
    else:
        ax.set_visible(False)

fig.suptitle(f"mycelium-bench-shm {data['started']}: round trips (not one-way), "
             f"{data['machine']['hardware_threads']} vCPUs", fontsize=11, x=0.01, ha="left")
fig.legend([handles[p] for p in PATHS if p in handles], [p for p in PATHS if p in handles],
           loc="upper right", ncol=len(handles), fontsize=9)
fig.tight_layout(rect=(0, 0, 1, 0.95))
fig.savefig(dst)
print(f"wrote {dst}")
