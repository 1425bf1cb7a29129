#!/usr/bin/env python3
"""Turns a JSON run of esp_bench into the markdown table of docs/benchmarks.md.

usage: esp_bench --benchmark_repetitions=5 --benchmark_format=json > run.json
       bench/esp_report.py run.json [GHZ]

For every algorithm, direction and size: median ns per packet of our ESP
and of the raw IPsec-MB jobs measured in the same run, the ratio, the extra
cycles per packet (at GHZ, default: the run's reported MHz) and Mpps/Gbps of
ours per core.
"""
import json
import re
import sys

ALGOS = ["aes-gcm-128", "aes-gcm-256", "chacha20-poly1305", "aes-cbc-128+sha1",
         "aes-cbc-128+sha256", "aes-cbc-256+sha384", "aes-cbc-256+sha512"]


def main():
    run = json.load(open(sys.argv[1]))
    ghz = float(sys.argv[2]) if len(sys.argv) > 2 else run["context"]["mhz_per_cpu"] / 1000.0
    med = {}
    for b in run["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        m = re.match(r"BM_(Esp|Raw)(Encrypt|Decrypt)/algo:(\d+)/size:(\d+)", b["name"])
        if not m:
            continue
        kind, d, algo, size = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        ns_per_pkt = b["cpu_time"] / 32.0  # a burst of 32 per iteration
        med[(kind, d, algo, size)] = (ns_per_pkt, b.get("pkt_bytes_avg", size))
    print(f"cycles at {ghz:.3f} GHz; ns are per packet (median CPU time / 32)\n")
    print("| algorithm | dir | size | raw ns | ESP ns | ESP/raw | extra cycles | ESP Mpps | ESP Gbit/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for algo in range(len(ALGOS)):
        for d in ("Encrypt", "Decrypt"):
            for size in (64, 128, 256, 512, 1024, 1420, 0):
                r = med.get(("Raw", d, algo, size))
                e = med.get(("Esp", d, algo, size))
                if not r or not e:
                    continue
                extra = (e[0] - r[0]) * ghz
                mpps = 1000.0 / e[0]
                gbps = mpps * e[1] * 8 / 1000.0
                label = "IMIX" if size == 0 else str(size)
                print(f"| {ALGOS[algo]} | {d[:3].lower()} | {label} | {r[0]:.1f} | {e[0]:.1f} | "
                      f"{e[0] / r[0]:.2f} | {extra:.0f} | {mpps:.2f} | {gbps:.2f} |")


if __name__ == "__main__":
    main()
