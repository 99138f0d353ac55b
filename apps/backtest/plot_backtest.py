#!/usr/bin/python3
"""Renders the PNG plots of mycelium-backtest from its CSV results.

    plot_backtest.py sweep DIR        # heatmap.png, best_equity.png
    plot_backtest.py montecarlo DIR   # pnl_histogram.png

Uses Debian's python3-matplotlib (apt-get install python3-matplotlib).
PNG metadata is stripped so the same CSV gives the same bytes.
"""
import csv
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("matplotlib is missing: apt-get install python3-matplotlib")

META = {"Software": None}


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sweep(d):
    rows = read(os.path.join(d, "results.csv"))
    metric = "sharpe"
    summary = os.path.join(d, "summary.txt")
    if os.path.exists(summary):
        for line in open(summary):
            if line.startswith("ranked by:"):
                metric = line.split(":", 1)[1].strip()
    fasts = sorted({int(r["fast"]) for r in rows})
    slows = sorted({int(r["slow"]) for r in rows})
    best = {}
    for r in rows:  # several fees: show the best value per (fast, slow)
        key = (int(r["fast"]), int(r["slow"]))
        v = float(r[metric])
        if metric == "max_drawdown":
            v = -v
        if key not in best or v > best[key]:
            best[key] = v
    grid = [[best.get((f, s), float("nan")) for f in fasts] for s in slows]
    fig, ax = plt.subplots(figsize=(8, 6))
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis",
                   extent=[min(fasts) - 0.5, max(fasts) + 0.5,
                           min(slows) - 0.5, max(slows) + 0.5])
    label = "-max_drawdown" if metric == "max_drawdown" else metric
    fig.colorbar(im, ax=ax, label=label)
    ax.set_xlabel("fast window")
    ax.set_ylabel("slow window")
    ax.set_title(f"{label} over the parameter grid ({len(rows)} runs)")
    fig.savefig(os.path.join(d, "heatmap.png"), dpi=100, metadata=META)
    plt.close(fig)

    eq = read(os.path.join(d, "best_equity.csv"))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(range(len(eq)), [float(r["equity"]) for r in eq], lw=1)
    step = max(1, len(eq) // 8)
    ax.set_xticks(range(0, len(eq), step))
    ax.set_xticklabels([eq[i]["date"] for i in range(0, len(eq), step)],
                       rotation=30, ha="right")
    ax.set_ylabel("equity")
    ax.set_title("equity curve of the best run")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "best_equity.png"), dpi=100, metadata=META)
    plt.close(fig)


def montecarlo(d):
    pnl = [float(r["pnl"]) for r in read(os.path.join(d, "pnl.csv"))]
    var = {}
    for line in open(os.path.join(d, "risk.txt")):
        for part in line.split(","):
            part = part.strip()
            for tag in ("VaR 95%", "CVaR 95%", "VaR 99%", "CVaR 99%"):
                if part.startswith(tag + " "):
                    var[tag] = float(part[len(tag):])
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.hist(pnl, bins=100, color="#4a7")
    for tag, style in (("VaR 95%", "--"), ("VaR 99%", ":")):
        if tag in var:
            ax.axvline(-var[tag], color="k", ls=style, label=f"{tag} = {var[tag]:.2f}")
    ax.set_xlabel("P&L")
    ax.set_ylabel("paths")
    ax.set_title(f"P&L distribution over {len(pnl)} paths")
    ax.legend()
    fig.savefig(os.path.join(d, "pnl_histogram.png"), dpi=100, metadata=META)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("sweep", "montecarlo"):
        sys.exit(__doc__)
    {"sweep": sweep, "montecarlo": montecarlo}[sys.argv[1]](sys.argv[2])
