#!/usr/bin/python3
"""Tick-to-order latency of a trading-system run (docs/deployment.md):
reads execution's journal(s), prints per hop (publish -> handler entry) and
end to end the median, p99 and p99.9, the framework's own hops added up
(handler compute excluded), and writes one PNG per journal.

    apps/trading_system/report.py journal-fast.json [journal-isolated.json ...]
        [--png-dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

HOPS = [("md_signal", "market data -> Python signal"),
        ("signal_risk", "signal -> OCaml risk"),
        ("risk_exec", "risk -> C++ execution"),
        ("end_to_end", "end to end (md publish -> execution)")]


def pct(s: List[int], p: float) -> float:
    return s[min(len(s) - 1, int(p * len(s)))] / 1000.0 if s else float("nan")


def stats(xs: List[int]) -> Dict[str, float]:
    s = sorted(xs)
    return {"median_us": pct(s, 0.5), "p99_us": pct(s, 0.99), "p999_us": pct(s, 0.999),
            "n": len(s)}


def summarize(journal: Dict[str, Any]) -> Dict[str, Any]:
    lat = journal["latency_ns"]
    out = {k: stats(lat[k]) for k, _ in HOPS}
    hops = [a + b + c for a, b, c in zip(lat["md_signal"], lat["signal_risk"], lat["risk_exec"])]
    out["framework_hops"] = stats(hops)
    return out


def plot(journal: Dict[str, Any], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lat = journal["latency_ns"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, label in HOPS:
        s = sorted(x / 1000.0 for x in lat[k])
        if not s:
            continue
        ys = [i / len(s) for i in range(len(s))]
        ax.plot(s, ys, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (us, log scale)")
    ax.set_ylabel("fraction of orders")
    ax.set_title("tick-to-order latency, deployment '%s' (%d orders)"
                 % (journal.get("deployment", "?"), len(lat["end_to_end"])))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("journals", nargs="+")
    p.add_argument("--png-dir", default=None, help="where the plots go (default: beside each journal)")
    p.add_argument("--json", default=None, help="also write the summary as JSON")
    a = p.parse_args()
    summary: Dict[str, Any] = {}
    for path in a.journals:
        try:
            with open(path) as f:
                j = json.load(f)
        except (OSError, ValueError) as e:
            print("report: cannot read journal %s: %s" % (path, e), file=sys.stderr)
            return 2
        name = j.get("deployment") or os.path.splitext(os.path.basename(path))[0]
        s = summarize(j)
        summary[name] = s
        print("deployment %s: %d bars, %d orders filled, %d rejected by risk, %d unchecked "
              "orders refused, risk started %d time(s)"
              % (name, j["bars"], j["orders_filled"], j["risk_rejections"],
                 j["refused_unchecked"], j["risk_starts"]))
        print("  %-40s %9s %9s %9s" % ("us", "median", "p99", "p99.9"))
        for k, label in HOPS + [("framework_hops", "framework hops added up")]:
            x = s[k]
            print("  %-40s %9.2f %9.2f %9.2f" % (label, x["median_us"], x["p99_us"], x["p999_us"]))
        png = os.path.join(a.png_dir or os.path.dirname(os.path.abspath(path)),
                           ("trading-system-%s.png" if a.png_dir else "latency-%s.png") % name)
        try:
            plot(j, png)
            print("  plot: %s" % png)
        except ImportError:
            print("  (no plot: python3-matplotlib is not installed)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
