#!/usr/bin/python3
"""The raw IPsec-MB ceiling for the pipeline benchmark's packet sizes, on
one core: build/bench/esp_bench's BM_RawEncrypt (the IPsec-MB calls ESP
makes, bursts of 32, nothing else: the direct GCM API for AES-GCM since
2026-12-04, jobs for the others; see docs/benchmarks.md issue 3).

  ceiling.py --alg aes-gcm-128|aes-cbc-128-sha256 [--cpu 1] [--sizes 64,1420,imix]
             [--repetitions 3] [--min-time 0.2] [--bin build/bench/esp_bench]

esp_bench's sizes are IP packet lengths (64 128 256 512 1024 1420); the
pipeline's are Ethernet frame lengths (IP length + 14): frame 64 = IP 50,
1420 = IP 1406, imix = 7:4:1 of IP 50/576/1500. Per size, the time per
packet is the median of --repetitions (randomly interleaved across sizes,
--benchmark_enable_random_interleaving, so a slow spell of the shared host
does not hit one size only), wall-clock (real_time: the pipeline's rates
are wall-clock too), per iteration / 32. The time for the pipeline's sizes
comes from a least-squares line t = a + b x IP length through the six
points (the ciphers are linear in the length; one line is steadier than
neighbouring noisy points); imix is 12 packets' time over 12. Prints one
JSON object: {"alg", "cpu", "ipsec_mb", "points": {ip_len: ns},
"fit": [a, b], "mpps": {size: Mpps}, "ns": {size: ns}}.
"""

import argparse
import json
import os
import subprocess
import sys

ALGO_INDEX = {"aes-gcm-128": 0, "aes-cbc-128-sha256": 4}  # kAlgos[] in bench/esp_bench.cc
ALGO_NAME = {"aes-gcm-128": "aes-gcm-128", "aes-cbc-128-sha256": "aes-cbc-128+sha256"}
BURST = 32
IP_SIZES = [64, 128, 256, 512, 1024, 1420]
IMIX_IP = [50] * 7 + [576] * 4 + [1500]


def frame_ip_lens(size):
    if size == "imix":
        return IMIX_IP
    return [int(size) - 14]


def fit(points):
    xs, ys = list(points), [points[x] for x in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def main():
    here = os.path.dirname(os.path.realpath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alg", required=True, choices=sorted(ALGO_INDEX))
    ap.add_argument("--cpu", default="1", help="taskset CPU list (default 1, the worker's)")
    ap.add_argument("--sizes", default="64,1420,imix")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", default="0.2")
    ap.add_argument("--bin", default=os.path.join(here, "../../build/bench/esp_bench"))
    a = ap.parse_args()

    idx = ALGO_INDEX[a.alg]
    filt = f"BM_RawEncrypt/algo:{idx}/size:({'|'.join(map(str, IP_SIZES))})$"
    cmd = ["taskset", "-c", a.cpu, a.bin, f"--benchmark_filter={filt}", "--benchmark_format=json",
           f"--benchmark_min_time={a.min_time}", f"--benchmark_repetitions={a.repetitions}",
           "--benchmark_enable_random_interleaving=true"]
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"ceiling: {' '.join(cmd)} failed: {e}")
    d = json.loads(out)
    per = {}
    arch = ""
    for b in d["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        size = int(b["name"].split("size:")[1].split("/")[0])
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6}[b["time_unit"]]
        per.setdefault(size, []).append(b["real_time"] * scale / BURST)
        arch = b.get("label", arch)
    if sorted(per) != IP_SIZES:
        sys.exit(f"ceiling: esp_bench gave sizes {sorted(per)}, expected {IP_SIZES} (names changed?)")
    points = {s: sorted(v)[len(v) // 2] for s, v in per.items()}
    ca, cb = fit(points)
    ns = {}
    for size in a.sizes.split(","):
        lens = frame_ip_lens(size)
        ns[size] = sum(ca + cb * x for x in lens) / len(lens)
    print(json.dumps({"alg": a.alg, "esp_bench_algo": ALGO_NAME[a.alg], "cpu": a.cpu, "ipsec_mb": arch,
                      "points": points, "fit": [ca, cb], "ns": ns, "mpps": {k: 1e3 / v for k, v in ns.items()},
                      "command": " ".join(cmd)}))


if __name__ == "__main__":
    sys.exit(main())
