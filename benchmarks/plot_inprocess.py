#!/usr/bin/env python3
"""Plot benchmarks/results/inprocess.json as a dependency-free SVG.

usage: plot_inprocess.py [results/inprocess.json] [results/inprocess.svg]

Left panels: one-way hop latency (median and p99, ns) per payload size for raw
CAF send and the Mycelium bus. Right panels: fan-out deliveries/s per
subscriber count for caf-shared, bus and caf-copy. One row per actor-system
config found in the JSON (default, tuned).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "inprocess.json")
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "results", "inprocess.svg")

with open(src) as f:
    data = json.load(f)

COLORS = {"caf": "#4c72b0", "bus": "#dd8452", "caf-shared": "#4c72b0", "caf-copy": "#8c8c8c"}
PW, PH = 460, 260          # panel size
ML, MT, MB = 60, 40, 40    # margins
out = []


def text(x, y, s, size=11, anchor="middle", weight="normal", color="#222"):
    s = str(s).replace("&", "&amp;").replace("<", "&lt;")
    out.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
               f'font-weight="{weight}" fill="{color}" font-family="sans-serif">{s}</text>')


def rect(x, y, w, h, color, opacity=1.0):
    out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
               f'fill="{color}" fill-opacity="{opacity}"/>')


def line(x1, y1, x2, y2, color="#999", width=1):
    out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
               f'stroke="{color}" stroke-width="{width}"/>')


def nice_max(v):
    if v <= 0:
        return 1
    m = 10 ** len(str(int(v))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * m:
            return step * m
    return 10 * m


def bars(x0, y0, title, groups, series, values, fmt_val, unit, overlay=None):
    """groups: x labels; series: names; values[g][s] -> bar height;
    overlay[g][s] -> optional second value drawn as a thin marker (p99)."""
    text(x0 + PW / 2, y0 + 18, title, 12, weight="bold")
    top = max(max(v for v in row if v is not None) for row in values)
    if overlay:
        top = max(top, max(max(v for v in row) for row in overlay))
    ymax = nice_max(top)
    ph = PH - MT - MB
    pw = PW - ML - 10
    bx, by = x0 + ML, y0 + MT
    for k in range(5):
        yv = ymax * k / 4
        yy = by + ph - ph * k / 4
        line(bx, yy, bx + pw, yy, "#e5e5e5")
        text(bx - 6, yy + 4, fmt_val(yv), 10, anchor="end")
    text(x0 + 14, by + ph / 2, unit, 10, anchor="middle")
    gw = pw / len(groups)
    bw = gw * 0.8 / len(series)
    for gi, g in enumerate(groups):
        gx = bx + gi * gw + gw * 0.1
        for si, s in enumerate(series):
            v = values[gi][si]
            h = ph * v / ymax
            rect(gx + si * bw, by + ph - h, bw - 2, h, COLORS.get(s, "#55a868"))
            if overlay:
                o = overlay[gi][si]
                oy = by + ph - ph * min(o, ymax) / ymax
                line(gx + si * bw, oy, gx + si * bw + bw - 2, oy, "#c44e52", 2)
        text(bx + gi * gw + gw / 2, by + ph + 16, g, 10)
    line(bx, by + ph, bx + pw, by + ph, "#444")
    lx = bx + 4
    for s in series:
        rect(lx, y0 + 26, 10, 10, COLORS.get(s, "#55a868"))
        text(lx + 14, y0 + 35, s, 10, anchor="start")
        lx += 14 + 7 * len(s) + 12
    if overlay:
        line(lx, y0 + 31, lx + 12, y0 + 31, "#c44e52", 2)
        text(lx + 16, y0 + 35, "p99", 10, anchor="start")


def human(n):
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


configs = data["configs"]
W = 2 * PW + 20
H = len(configs) * (PH + 20) + 50
text(W / 2, 20, f"mycelium-bench-inprocess ({data['started']}, {data['machine']['cpu']}, "
     f"{data['machine']['hardware_threads']} hw threads)", 13, weight="bold")
for ci, c in enumerate(configs):
    y0 = 30 + ci * (PH + 20)
    lat = c.get("latency", [])
    if lat:
        groups = [human(r["size"]) for r in lat]
        vals = [[r["caf"]["median_ns"], r["bus"]["median_ns"]] for r in lat]
        p99 = [[r["caf"]["p99_ns"], r["bus"]["p99_ns"]] for r in lat]
        bars(0, y0, f"[{c['name']}] one-way hop (RTT/2): median bars, p99 marks",
             groups, ["caf", "bus"], vals, lambda v: f"{v:.0f}", "ns", overlay=p99)
    fan = c.get("fanout", [])
    if fan:
        series = ["caf-shared", "bus", "caf-copy"]
        groups = [f"{f['subscribers']} sub" for f in fan]
        vals = [[f["variants"][s]["deliveries_per_s_median_round"] / 1e6 for s in series] for f in fan]
        bars(PW + 20, y0, f"[{c['name']}] fan-out, 64 B: deliveries/s (median round)",
             groups, series, vals, lambda v: f"{v:.1f}", "M/s")

svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
       f'viewBox="0 0 {W} {H}">', f'<rect width="{W}" height="{H}" fill="white"/>'] + out + ["</svg>"]
with open(dst, "w") as f:
    f.write("\n".join(svg) + "\n")
print(f"wrote {dst}")
