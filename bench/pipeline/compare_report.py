#!/usr/bin/python3
"""Summarise compare.sh's runs.jsonl: one row per case with the medians over
the rounds.

  compare_report.py RUNS.jsonl [--json-too 0|1] [--markdown]

Columns: case (alg/SAs/size/workers, then /in or /percpu for compare.sh
--inbound or --per-cpu-sas), cygnet-dp Mpps and ipsec-secgw Mpps
(median over rounds of each run's median window), ratio cygnet/secgw (the
median of the per-round ratios: each round's pair ran back to back),
Gbit/s of cleartext frames (cygnet, secgw), the raw IPsec-MB ceiling in
Mpps for one core at that size (median over rounds), cygnet/ceiling per
worker (cygnet Mpps / (workers x ceiling)), the worst loss (packets
received but not sent in the windows) of each tool over the rounds, the
spread of cygnet's rounds ((max-min)/median) and the largest 'other
processes' CPU use and steal seen in any run of the case.

A run that sent more packets than it received (loss < 0: cygnet-dp
fragments IMIX's 1514-byte frames, whose 1500-byte IP packets no longer
fit a 1500-byte MTU once encapsulated, so 12 packets in make 13 out) is
counted at the rate it received cleartext (port 0's ipackets rate), not
at port 1's; such cases are marked "*".

Then the issue-5 targets, each with the figures it rests on:
  - 64 B, per worker core: cygnet-dp >= 1.5 x ipsec-secgw (the ratio);
  - 1420 B: cygnet-dp >= 90 % of the raw crypto ceiling (W x ceiling);
  - SA scaling: cygnet-dp at 10k SAs >= 90 % of its rate at 1 SA (same
    size, algorithm, workers).
"""

import json
import statistics
import sys


def med(xs):
    return statistics.median(xs) if xs else None


def f(x, fmt):
    return "-" if x is None else format(x, fmt)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    path = args[0]
    as_json = "--json-too" in args and args[args.index("--json-too") + 1] == "1"
    markdown = "--markdown" in args
    runs = [json.loads(line) for line in open(path) if line.strip()]
    for r in runs:
        r["fragmented"] = False
        if "mpps" in r and r.get("loss", 0) < -0.001 and r["tool"] != "ceiling":
            r["mpps_port1"], r["mpps"], r["fragmented"] = r["mpps"], r["rx_mpps"], True
    cases = []
    for r in runs:
        if r["case"] not in cases:
            cases.append(r["case"])
    rows = []
    for c in cases:
        rs = [r for r in runs if r["case"] == c]
        by = {t: [r for r in rs if r["tool"] == t] for t in ("cygnet-dp", "ipsec-secgw", "ceiling")}
        ok = {t: [r for r in v if "mpps" in r] for t, v in by.items()}
        errors = sorted({r["error"] for v in by.values() for r in v if "error" in r})
        alg, sas, size, workers, *variant = c.split("/")  # variant: "in" or "percpu" (compare.sh --inbound, --per-cpu-sas)
        w = int(workers.rstrip("w"))
        dp = [r["mpps"] for r in ok["cygnet-dp"]]
        sg = [r["mpps"] for r in ok["ipsec-secgw"]]
        ceil = [r["mpps"][size] for r in ok["ceiling"] if size in r.get("mpps", {})]
        pairs = {}
        for r in ok["cygnet-dp"]:
            pairs.setdefault(r["round"], {})["dp"] = r["mpps"]
        for r in ok["ipsec-secgw"]:
            pairs.setdefault(r["round"], {})["sg"] = r["mpps"]
        ratios = [p["dp"] / p["sg"] for p in pairs.values() if "dp" in p and "sg" in p and p["sg"] > 0]
        mean_frame = next((r["mean_frame"] for r in ok["cygnet-dp"] + ok["ipsec-secgw"]), None)
        row = {
            "case": c, "alg": alg, "sas": int(sas.rstrip("sa")), "size": size, "workers": w,
            "direction": "in" if "in" in variant else "out", "per_cpu_sas": "percpu" in variant,
            "rounds": {"cygnet-dp": dp, "ipsec-secgw": sg, "ceiling": ceil},
            "cygnet_mpps": med(dp), "secgw_mpps": med(sg), "ratio": med(ratios),
            "cygnet_gbps": med(dp) * mean_frame * 8 / 1e3 if dp and mean_frame else None,
            "secgw_gbps": med(sg) * mean_frame * 8 / 1e3 if sg and mean_frame else None,
            "ceiling_mpps": med(ceil),
            "cygnet_vs_ceiling": med(dp) / (w * med(ceil)) if dp and ceil else None,
            "cygnet_loss_max": max((r["loss"] for r in ok["cygnet-dp"]), default=None),
            "secgw_loss_max": max((r["loss"] for r in ok["ipsec-secgw"]), default=None),
            "cygnet_spread": (max(dp) - min(dp)) / med(dp) if len(dp) > 1 else None,
            "secgw_spread": (max(sg) - min(sg)) / med(sg) if len(sg) > 1 else None,
            "others_cpu_max": max((r.get("cpu_others", 0) for r in ok["cygnet-dp"] + ok["ipsec-secgw"]),
                                  default=None),
            "steal_max": max((r.get("cpu_steal", 0) for r in ok["cygnet-dp"] + ok["ipsec-secgw"]),
                             default=None),
            "ipsec_mb": next((r["ipsec_mb"] for r in ok["cygnet-dp"]), None),
            "cygnet_startup_s": max((r.get("startup_s", 0) for r in ok["cygnet-dp"]), default=None),
            "errors": errors,
            "fragmented": any(r["fragmented"] for r in rs),
        }
        rows.append(row)

    hdr = ["case", "cygnet Mpps", "secgw Mpps", "cyg/secgw", "cygnet Gbit/s", "secgw Gbit/s",
           "ceiling Mpps", "cyg/(W x ceil)", "loss cyg", "loss secgw", "spread cyg", "spread secgw",
           "others CPU", "steal"]

    def cells(r):
        pct = lambda x: "-" if x is None else f"{100 * max(0.0, x):.2f}%"
        return [r["case"] + (" *" if r["fragmented"] else ""), f(r["cygnet_mpps"], ".3f"), f(r["secgw_mpps"], ".3f"), f(r["ratio"], ".2f"),
                f(r["cygnet_gbps"], ".2f"), f(r["secgw_gbps"], ".2f"), f(r["ceiling_mpps"], ".3f"),
                f(r["cygnet_vs_ceiling"], ".2f"), pct(r["cygnet_loss_max"]), pct(r["secgw_loss_max"]),
                pct(r["cygnet_spread"]), pct(r["secgw_spread"]), f(r["others_cpu_max"], ".2f"),
                f(r["steal_max"], ".2f")]

    table = [cells(r) for r in rows]
    if markdown:
        print("| " + " | ".join(hdr) + " |")
        print("| --- |" + " ---: |" * (len(hdr) - 1))
        for t in table:
            print("| " + " | ".join(t) + " |")
    else:
        widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(hdr)]
        print("  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(hdr)))
        for t in table:
            print("  ".join(x.ljust(widths[i]) if i == 0 else x.rjust(widths[i]) for i, x in enumerate(t)))
    if any(r["fragmented"] for r in rows):
        print("* sent more packets than received (fragments): rate and loss from port 0 (cleartext in)")
    for r in rows:
        for e in r["errors"]:
            print(f"{r['case']}: {e}")

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    print("targets:")
    for r in rows:
        if r["size"] == "64" and r["alg"] == "aes-gcm-128":
            ok = None if r["ratio"] is None else r["ratio"] >= 1.5
            print(f"  {r['case']}: cygnet/secgw {f(r['ratio'], '.2f')} (>= 1.50): {verdict(ok)}")
    for r in rows:
        if r["size"] == "1420":
            x = r["cygnet_vs_ceiling"]
            ok = None if x is None else x >= 0.9
            print(f"  {r['case']}: cygnet/(W x ceiling) {f(x, '.2f')} (>= 0.90): {verdict(ok)}")
    key = {(r["alg"], r["size"], r["workers"], r["sas"]): r for r in rows}
    for (alg, size, w, n), r in key.items():
        if n != 10000 or (alg, size, w, 1) not in key:
            continue
        a, b = key[(alg, size, w, 1)]["cygnet_mpps"], r["cygnet_mpps"]
        x = b / a if a and b else None
        ok = None if x is None else x >= 0.9
        print(f"  {alg}/{size}/{w}w: cygnet 10k SAs / 1 SA = {f(x, '.2f')} (>= 0.90): {verdict(ok)}")
    if as_json:
        print(json.dumps({"cases": rows}))


if __name__ == "__main__":
    sys.exit(main())
