#!/usr/bin/python3
"""Check a pcap of what a gateway sent out of its protected port after
decrypting gen_pcap.py --esp input (the inbound direction, `cygnet.sh check
--inbound`), with scapy.

  clear_check.py --size N --flows N [--expect N] [--ttl T] CLEAR.pcap

Every packet must be Ethernet/IPv4/UDP, with a correct IPv4 header checksum
and UDP checksum, and equal, from the IP header on, to the cleartext packet
gen_pcap.py built for its flow (the flow is known from the destination
address: flow i goes to 10.2.0.0 + i) with the TTL lowered by one (a
forwarded packet) and the checksum to match, except the IP ID, which names
the packet's place in the input. At least --expect packets must be read and
--flows distinct flows seen. Exit 0 if all of that holds.
"""

import argparse
import sys

from scapy.all import IP, UDP, Ether, RawPcapReader

import gen_pcap


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pcap")
    ap.add_argument("--size", type=int, required=True, help="gen_pcap.py --size (inner frame length)")
    ap.add_argument("--flows", type=int, required=True, help="gen_pcap.py --flows: all must be seen")
    ap.add_argument("--expect", type=int, default=1, help="at least this many packets (default 1)")
    ap.add_argument("--ttl", type=int, default=63, help="expected TTL (default 63: 64 less one hop)")
    a = ap.parse_args()

    b = gen_pcap.Builder(gen_pcap.parse_mac(gen_pcap.DEFAULT_DST_MAC), gen_pcap.parse_mac(gen_pcap.DEFAULT_SRC_MAC))
    seen, bad, n = set(), 0, 0
    for raw, _meta in RawPcapReader(a.pcap):
        n += 1
        pkt = Ether(raw)
        problems = []
        if IP not in pkt or UDP not in pkt:
            problems.append("not Ether/IP/UDP")
        else:
            ip = pkt[IP]
            flow = int.from_bytes(bytes(ip)[16:20], "big") - gen_pcap.DST_BASE
            if not 0 <= flow < a.flows:
                problems.append(f"destination {ip.dst} is no flow's")
            else:
                want = IP(b.frame(a.size, flow, ip.id)[gen_pcap.ETH_LEN:])
                want.ttl = a.ttl
                del want.chksum
                want = bytes(want)
                if bytes(ip) != want:
                    problems.append(f"differs from flow {flow}'s cleartext packet with TTL {a.ttl} "
                                    f"(got TTL {ip.ttl}, length {len(bytes(ip))} vs {len(want)})")
                ref = IP(bytes(ip))
                del ref.chksum
                del ref[UDP].chksum
                ref = IP(bytes(ref))
                if ref.chksum != ip.chksum or ref[UDP].chksum != pkt[UDP].chksum:
                    problems.append("bad IPv4 or UDP checksum")
                seen.add(flow)
        if problems:
            bad += 1
            if bad <= 10:
                print(f"clear_check: packet {n - 1}: " + "; ".join(problems), file=sys.stderr)
    ok = bad == 0 and n >= a.expect and len(seen) == a.flows
    print(f"clear_check: {n} packets, {bad} bad, {len(seen)} of {a.flows} flows seen "
          f"(expected at least {a.expect} packets): {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
