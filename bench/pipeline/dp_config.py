#!/usr/bin/python3
"""Write a cygnet-dp config for the pipeline benchmark (the counterpart of
`secgw.sh config`): port 0 "in" (protected) replays a pcap, port 1 "out"
(unprotected) is a net_null sink or a net_pcap capture, N static outbound
tunnel SAs and N policies, one per gen_pcap.py flow.

  dp_config.py --sas N --alg aes-gcm-128|aes-cbc-128-sha256 --pcap FILE
               [--workers W] [--cores MAIN:W1,W2] [--capture FILE]
               [--once] [--out-device DEV] [--shm NAME] [--pcap-packets C]
               [--bypass] [--per-cpu-sas] OUT.conf

SA i (0 <= i < N): spi 0x1000+i, 192.0.2.1 -> 192.0.2.2, reqid i+1,
aes-gcm16-128 or aes-cbc-128 + hmac-sha256-128, fixed example keys (the
same as secgw.sh's, the same for every SA). Policy i: out, priority 100,
protect reqid i+1, src 10.1.0.0/16, dst 10.2.0.0+i/32 (flow i of
gen_pcap.py: 10.2.(i>>8).(i&255), past 65535 into 10.3.x.y).

Ports: "in" = net_pcap0 with one rx_pcap=FILE per worker (one RX queue
each; net_pcap gives as many TX queues, which drop), infinite_rx=1 unless
--once; "out" = --out-device (default: net_pcap1 with one
rx_pcap=EMPTY per worker, EMPTY = an empty pcap written next to OUT.conf:
RX never delivers, the TX queues count and drop; the loader refuses
net_null's no-rx=1 argument, see README), or with --capture FILE
net_pcap1,tx_pcap=FILE (one worker only: one TX queue).
The protected port's address is 10.0.0.1/24, outside the flows' sources
(10.1.0.0/16, which includes 10.1.0.0 and would make one flow's source the
port's own or network address). Route 10.2.0.0/15 (10.2.x.y and 10.3.x.y)
via 192.0.2.2 out of "out", static neighbour 192.0.2.2.

Memory: net_pcap's infinite_rx holds a copy of the whole pcap in mbufs per
RX queue, so mbufs = workers x pcap packets + what the loader requires
(ports x workers x (rx_ring + tx_ring) + (workers + 1) x mbuf_cache) +
16384 spare, rounded up to 2^q - 1. flow_cache_entries = 2 x N rounded up
to a power of two (>= 65536, at most 2^24); max_sas, max_policies >= N.

--inbound writes the other direction, for `gen_pcap.py --esp` input:
port 0 "in" is the unprotected side (192.0.2.1/24) where the ESP arrives,
port 1 "out" the protected one (10.0.0.1/24); SA i is dir "in", 192.0.2.2
-> 192.0.2.1, `anti_replay = false` (the pcap is replayed: its sequence
numbers repeat, and every repeat would be dropped as a replay; ipsec-secgw
is run without a replay window for the same reason); policy i is dir "in",
protect reqid i+1, the same selectors (the inner packet must match it,
RFC 4301 5.2). Route 10.2.0.0/15 via 10.0.0.2 out of "out", static
neighbour 10.0.0.2.

--per-cpu-sas (outbound): one SA per worker for each reqid (RFC 9611
style): SA i of worker k (k >= 1) has spi 0x1000+i+k*0x100000, the rest as
SA i. cygnet-dp owns a reqid's SAs round-robin over the workers and each
worker picks its own, so no packet is handed to another core. The pcap
and policies are unchanged; ipsec-secgw has no such notion (its lcores
share one SA, with atomic sequence numbers).

--bypass makes the policies "bypass" (cleartext forwarded, no ESP; the SAs
stay loaded): the pipeline and the pcap/sink I/O without crypto, a ceiling
of the harness itself.

The file is written with mode 0600 (it holds keys).
"""

import argparse
import os
import struct
import sys

GCM_KEY = "0x2b7e151628aed2a6abf7158809cf4f3ccafebabe"   # 16-byte key + 4-byte salt, as secgw.sh
CBC_KEY = "0x2b7e151628aed2a6abf7158809cf4f3c"
HMAC_KEY = "0x" + "0b" * 32
DST_BASE = (10 << 24) | (2 << 16)
RX_RING = 2048
TX_RING = 2048
MBUF_CACHE = 512


def ip(a):
    return "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)


def pcap_packets(path):
    n = 0
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24 or struct.unpack("<I", hdr[:4])[0] not in (0xA1B2C3D4, 0xA1B23C4D):
            raise SystemExit(f"dp_config: not a little-endian pcap file: {path}")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            f.seek(struct.unpack("<IIII", rec)[2], 1)
            n += 1
    return n


def pow2_at_least(x):
    p = 1
    while p < x:
        p <<= 1
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--sas", type=int, required=True)
    ap.add_argument("--alg", required=True, choices=["aes-gcm-128", "aes-cbc-128-sha256"])
    ap.add_argument("--pcap", required=True, help="cleartext input (gen_pcap.py)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cores", help="MAIN:W1,W2,... (default 0:1,2,...)")
    ap.add_argument("--capture", help="send ESP to this pcap file instead of dropping it")
    ap.add_argument("--out-device", help="device of the unprotected port (the sink)")
    ap.add_argument("--once", action="store_true", help="send the pcap once (no infinite_rx)")
    ap.add_argument("--shm", default="bench", help="shm instance name (EAL prefix cygnet-NAME)")
    ap.add_argument("--pcap-packets", type=int, help="packets in the pcap (default: count them)")
    ap.add_argument("--bypass", action="store_true", help="bypass policies instead of protect")
    ap.add_argument("--inbound", action="store_true", help="inbound SAs and policies, ESP in on port 0")
    ap.add_argument("--per-cpu-sas", action="store_true", help="one outbound SA per worker for each reqid")
    a = ap.parse_args()
    if a.inbound and a.bypass:
        raise SystemExit("dp_config: --bypass is for the outbound direction (ESP cannot be bypassed)")
    if a.inbound and a.per_cpu_sas:
        raise SystemExit("dp_config: --per-cpu-sas is for the outbound direction (an inbound SA is found by its SPI)")

    if not 1 <= a.sas <= 100000:
        raise SystemExit("dp_config: --sas must be 1..100000")
    if a.cores:
        m, w = a.cores.split(":", 1)
        main_core, workers = int(m), [int(x) for x in w.split(",")]
    else:
        main_core, workers = 0, list(range(1, a.workers + 1))
    nw = len(workers)
    per_sa = nw if a.per_cpu_sas else 1  # SAs per reqid
    if a.capture and nw != 1:
        raise SystemExit("dp_config: --capture needs one worker (net_pcap tx_pcap gives one TX queue)")
    pcap = os.path.realpath(a.pcap)
    count = a.pcap_packets if a.pcap_packets is not None else pcap_packets(pcap)

    in_dev = "net_pcap0," + "".join(f"rx_pcap={pcap}," for _ in range(nw))
    in_dev += "infinite_rx=1" if not a.once else ""
    in_dev = in_dev.rstrip(",")
    if a.capture:
        out_dev = f"net_pcap1,tx_pcap={os.path.realpath(a.capture)}"
    elif a.out_device:
        out_dev = a.out_device
    else:
        empty = os.path.join(os.path.dirname(os.path.realpath(a.out)), "empty.pcap")
        with open(empty, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out_dev = "net_pcap1" + f",rx_pcap={empty}" * nw

    need = 2 * nw * (RX_RING + TX_RING) + (nw + 1) * MBUF_CACHE
    mbufs = pow2_at_least(nw * count + need + 16384 + 1) - 1
    mbufs = min(mbufs, (1 << 24) - 1)
    fce = min(max(pow2_at_least(2 * a.sas), 65536), 1 << 24)

    if a.alg == "aes-gcm-128":
        crypto = f'enc = "aes-gcm16-128"; enc_key = "{GCM_KEY}";'
    else:
        crypto = f'enc = "aes-cbc-128"; enc_key = "{CBC_KEY}"; integ = "hmac-sha256-128"; integ_key = "{HMAC_KEY}";'

    if a.inbound:
        direction, in_side, in_addr, out_side, out_addr, hop = "in", "unprotected", "192.0.2.1/24", \
            "protected", "10.0.0.1/24", "10.0.0.2"
        sa_ends, extra = 'src = "192.0.2.2"; dst = "192.0.2.1";', " anti_replay = false;"
    else:
        direction, in_side, in_addr, out_side, out_addr, hop = "out", "protected", "10.0.0.1/24", \
            "unprotected", "192.0.2.1/24", "192.0.2.2"
        sa_ends, extra = 'src = "192.0.2.1"; dst = "192.0.2.2";', ""
    lines = [
        f"# cygnet-dp pipeline benchmark config written by bench/pipeline/dp_config.py:",
        f"# {a.sas} {direction}bound SAs ({a.alg}), {nw} worker(s), input {pcap} ({count} packets).",
        "# Example keys, never for real traffic.",
        "dataplane = {",
        "  ports = (",
        f'    {{ name = "in"; side = "{in_side}"; device = "{in_dev}";',
        f'      addresses = [ "{in_addr}" ]; }},',
        f'    {{ name = "out"; side = "{out_side}"; device = "{out_dev}";',
        f'      addresses = [ "{out_addr}" ]; }}',
        "  );",
        f'  routes = ( {{ dst = "10.2.0.0/15"; via = "{hop}"; port = "out"; }} );',
        f'  neighbours = ( {{ ip = "{hop}"; mac = "02:00:00:00:00:02"; port = "out"; }} );',
        f"  cores = {{ main = {main_core}; workers = [ {', '.join(map(str, workers))} ]; }};",
        "  memory = {",
        f"    mbufs = {mbufs};",
        f"    mbuf_cache = {MBUF_CACHE};",
        f"    rx_ring = {RX_RING};",
        f"    tx_ring = {TX_RING};",
        f"    flow_cache_entries = {fce};",
        f"    max_sas = {max(a.sas * per_sa, 1024)};",
        f"    max_policies = {max(a.sas, 1024)};",
        "  };",
        f'  shm = "{a.shm}";',
        "};",
        "",
        "sas = (",
    ]
    sa_lines = []
    for k in range(per_sa):  # a reqid's SAs in order: the k-th is owned by worker k
        for i in range(a.sas):
            sa_lines.append(f'  {{ spi = 0x{0x1000 + i + k * 0x100000:x}; dir = "{direction}"; {sa_ends} '
                            f'mode = "tunnel"; reqid = {i + 1}; {crypto}{extra} }}')
    lines.append(",\n".join(sa_lines))
    lines += [");", "", "policies = ("]
    for i in range(a.sas):
        sep = "," if i + 1 < a.sas else ""
        action = 'action = "bypass";' if a.bypass else f'action = "protect"; reqid = {i + 1};'
        lines.append(f'  {{ dir = "{direction}"; priority = 100; {action} '
                     f'src = "10.1.0.0/16"; dst = "{ip(DST_BASE + i)}/32"; }}{sep}')
    lines += [");", ""]
    fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    print(f"dp_config: wrote {a.out}: {a.sas * per_sa} {direction}bound SAs ({a.alg}), {nw} worker(s), mbufs {mbufs}, "
          f"flow_cache_entries {fce}")


if __name__ == "__main__":
    sys.exit(main())
