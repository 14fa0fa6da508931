#!/usr/bin/env python3
"""Scripts/plot-io.py TABLE.md OUT.svg: draws io-compare.sh's first table as an SVG bar chart
(gmemfs and the C baseline side by side per metric, values normalised to the baseline, ratio
labelled). Standard library only."""
import sys

rows = []
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 5 and cells[0] in ("page cache", "direct_io"):
        rows.append((cells[0], cells[1], float(cells[2]), float(cells[3])))
if not rows:
    sys.exit("plot-io: no table rows found")

names = {"seq_write_mbs": "seq write", "seq_read_cold_mbs": "cold seq read", "rand4k_read_iops": "cold rand 4K"}
W, H, left, top, bottom = 760, 360, 60, 50, 90
plot_h = H - top - bottom
group_w = (W - left - 20) / len(rows)
maxr = max(2.0, max(g / c for _, _, g, c in rows) * 1.1)
y = lambda r: top + plot_h * (1 - r / maxr)
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">gmemfs vs C libfuse baseline (same run; baseline = 1.0)</text>']
for t in [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]:
    if t <= maxr:
        out.append(f'<line x1="{left}" x2="{W-20}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{"#444" if t == 1 else "#ddd"}"/>')
        out.append(f'<text x="{left-6}" y="{y(t)+4:.1f}" text-anchor="end">{t:.1f}x</text>')
for i, (mode, metric, g, c) in enumerate(rows):
    x0 = left + i * group_w + group_w * 0.15
    bw = group_w * 0.32
    for j, (val, color) in enumerate(((1.0, "#9aa5b1"), (g / c, "#2b7bb9"))):
        x = x0 + j * bw
        out.append(f'<rect x="{x:.1f}" y="{y(val):.1f}" width="{bw:.1f}" height="{y(0)-y(val):.1f}" fill="{color}"/>')
    out.append(f'<text x="{x0+1.5*bw:.1f}" y="{y(g/c)-5:.1f}" text-anchor="middle" font-weight="bold">{g/c:.2f}x</text>')
    out.append(f'<text x="{x0+bw:.1f}" y="{H-bottom+18}" text-anchor="middle">{names.get(metric, metric)}</text>')
    out.append(f'<text x="{x0+bw:.1f}" y="{H-bottom+34}" text-anchor="middle" fill="#555">{mode}</text>')
ly = H - 22
out.append(f'<rect x="{left}" y="{ly-10}" width="12" height="12" fill="#9aa5b1"/><text x="{left+18}" y="{ly}">C libfuse baseline (benchmark kit, cbaseline.c)</text>')
out.append(f'<rect x="{left+300}" y="{ly-10}" width="12" height="12" fill="#2b7bb9"/><text x="{left+318}" y="{ly}">gmemfs (release)</text>')
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
