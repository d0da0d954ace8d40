#!/usr/bin/env python3
"""encoders_table.py — the markdown table of encoder-benchmark JSON lines (laic bench and
bench/bench_encoders.py share one schema; a line with "error" is a failed command).

    python3 bench/encoders_table.py LINES.jsonl
Used by bench/bench_gpu_encoders.sh and bench/gpu_session.sh (quick).
"""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
f = lambda v, d=1: "—" if v is None else f"{v:,.{d}f}"
print("| bench | impl | variant | batch | tokens | items/s | ms/batch | TFLOP/s | % peak |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if "error" in r:
        print(f"| FAILED | | `{r['command'][:80]}` | | | | | | {r['error'][:120]} |")
        continue
    toks = r.get("seq_len", "")
    if r.get("noun_bank"):
        toks = f"mean {r['mean_seq_len']:.1f}"
        ms = f"{r['seconds_encode']:.2f} s total"
        bench = f"noun bank ({r['items']:,} prompts; tokenize {r['seconds_tokenize']:.1f} s excluded)"
    else:
        ms, bench = f(r.get("ms_median"), 2), r["bench"]
    print(f"| {bench} | {r['impl']} | {r['variant']} | {r['batch']} | {toks} | "
          f"{f(r.get('items_per_s'))} | {ms} | {'—' if r.get('tflops') is None else format(r['tflops'], '.3g')} | {f(r.get('pct_peak'))} |")
