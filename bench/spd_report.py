#!/usr/bin/python3
"""Turns a JSON run of bench/spd_bench into the tables of docs/benchmarks.md.

    build/bench/spd_bench --benchmark_repetitions=3 --benchmark_format=json > run.json
    bench/spd_report.py run.json

Figures are medians of the repetitions, per packet (bursts are divided by
their size), in ns and in cycles at the clock Google Benchmark reports.
"""
import json
import re
import sys


def main():
    run = json.load(open(sys.argv[1]))
    mhz = run["context"].get("mhz_per_cpu", 0) or 0
    med = {}
    extra = {}
    for b in run["benchmarks"]:
        if b.get("aggregate_name") != "median" or b.get("error_occurred"):
            continue
        name = b["run_name"]
        ips = b.get("items_per_second")
        ns = 1e9 / ips if ips else b["cpu_time"]  # per packet
        if b.get("time_unit") == "ms" and not ips:
            ns = b["cpu_time"] * 1e6
        med[name] = ns
        extra[name] = b

    def cyc(ns):
        return ns * mhz / 1000.0

    print(f"cycles at {mhz / 1000:.3f} GHz; ns per packet (median CPU time)\n")

    # rte_acl at its fastest method for each set (BM_Acl/.../alg:N).
    algs = {0: "own pick", 2: "SSE", 3: "AVX2", 6: "AVX-512 x16", 7: "AVX-512 x32"}

    def best_acl(key):
        found = [(med[f"BM_Acl/{key}/alg:{a}"], a) for a in algs if f"BM_Acl/{key}/alg:{a}" in med]
        if f"BM_Acl/{key}" in med:  # runs from before the methods were measured
            found.append((med[f"BM_Acl/{key}"], 0))
        return min(found) if found else (None, None)

    # Miss path: linear vs classifier vs rte_acl.
    print("#### Classifier (the flow-cache miss path)\n")
    print("| shape | policies | linear ns | ours ns | ours cycles | ours burst 32 ns | trees (or tuple groups) "
          "| rte_acl ns (burst 32, fastest method) | method | ours/rte_acl | ours burst/rte_acl |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    shapes = {0: "gateway", 1: "mixed"}
    for shape in (0, 1):
        for n in (1, 100, 1000, 10000, 100000):
            key = f"shape:{shape}/policies:{n}"
            ours = med.get(f"BM_Classifier/{key}")
            if ours is None:
                continue
            lin = med.get(f"BM_Linear/{key}")
            burst = med.get(f"BM_ClassifierBurst/{key}")
            acl, alg = best_acl(key)
            b = extra[f"BM_Classifier/{key}"]
            groups = b["trees"] if "trees" in b else b.get("groups", 0)
            print(f"| {shapes[shape]} | {n} | {lin:.1f} |" if lin else f"| {shapes[shape]} | {n} | - |", end="")
            print(f" {ours:.1f} | {cyc(ours):.0f} |", end="")
            print(f" {burst:.1f} |" if burst else " - |", end="")
            print(f" {groups:.0f} |", end="")
            if acl:
                print(f" {acl:.1f} | {algs[alg]} | {ours / acl:.2f} |", end="")
                print(f" {burst / acl:.2f} |" if burst else " - |")
            else:
                print(" - | - | - | - |")

    for fam, title in (("BM_CacheHit", "Flow cache hits, one lookup at a time (cache: 4 entries per flow)"),
                       ("BM_CacheHitBurst", "Flow cache hits, `lookup_burst` of 32 (cache: 4 entries per flow)"),
                       ("BM_CachedPath", "Cached path with a 65,536-entry cache, one at a time"),
                       ("BM_CachedPathBurst", "Cached path with a 65,536-entry cache, bursts of 32")):
        rows = {}
        for name, ns in med.items():
            m = re.fullmatch(fam + r"/policies:(\d+)/flows:(\d+)", name)
            if m:
                rows[(int(m.group(1)), int(m.group(2)))] = (ns, extra[name].get("hit_pct", 0))
        if not rows:
            continue
        flows = sorted({f for _, f in rows})
        print(f"\n#### {title}\n")
        print("| policies | " + " | ".join(f"{f} flows: ns / cycles / hit %" for f in flows) + " |")
        print("| ---: | " + " | ".join("---:" for _ in flows) + " |")
        for p in sorted({p for p, _ in rows}):
            cells = []
            for f in flows:
                if (p, f) in rows:
                    ns, hit = rows[(p, f)]
                    cells.append(f"{ns:.1f} / {cyc(ns):.0f} / {hit:.1f}")
                else:
                    cells.append("-")
            print(f"| {p} | " + " | ".join(cells) + " |")

    builds = [(n, b) for n, b in extra.items() if n.startswith("BM_Build")]
    if builds:
        print("\n#### Publishing a policy set (ms per build)\n")
        print("| what | shape | policies | ms |")
        print("| --- | --- | ---: | ---: |")
        for name, b in sorted(builds):
            m = re.fullmatch(r"BM_Build(\w+)/shape:(\d)/policies:(\d+)(/iterations:\d+)?", name)
            if m:
                print(f"| {m.group(1)} | {shapes[int(m.group(2))]} | {m.group(3)} | {b['cpu_time']:.1f} |")


if __name__ == "__main__":
    main()
