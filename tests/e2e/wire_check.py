#!/usr/bin/python3
"""Reads the capture of the wire between the gateways and decrypts every ESP
packet with scapy's ESP implementation (an independent reader: it checks the
ICV and the padding), with the SAs of a JSON file:

  wire_check.py SAS.json WIRE.pcap

SAS.json: [{"spi": 4097, "src": "192.0.2.1", "dst": "192.0.2.2",
            "enc": "aes-gcm16-128" | "aes-cbc-128" | "chacha20-poly1305",
            "enc_key": "hex", "integ_key": "hex" (CBC only), "encap": bool}, ...]

Prints one JSON object: per SPI the packets seen, decrypted, ICV failures and
the inner packets found (icmp echo request/reply, icmpv6 echo, udp, tcp), and
the cleartext packets seen between the protected ranges (10.1.0.0/24 <->
10.2.0.0/16, 2001:db8:1::/64 <-> 2001:db8:2::/48), which must be none.
"""
import ipaddress
import json
import sys

from scapy.all import IP, UDP, IPv6, RawPcapReader, Ether
from scapy.layers.inet import ICMP, TCP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest
from scapy.layers.ipsec import ESP, SecurityAssociation

ALGS = {
    "aes-gcm16-128": ("AES-GCM", None),
    "aes-gcm16-256": ("AES-GCM", None),
    "aes-cbc-128": ("AES-CBC", "SHA2-256-128"),
    "aes-cbc-256": ("AES-CBC", "SHA2-256-128"),
    "chacha20-poly1305": ("CHACHA20-POLY1305", None),
}
A4, B4 = ipaddress.ip_network("10.1.0.0/24"), ipaddress.ip_network("10.2.0.0/16")
A6, B6 = ipaddress.ip_network("2001:db8:1::/64"), ipaddress.ip_network("2001:db8:2::/48")


def protected_pair(src, dst):
    try:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError:
        return False
    if s.version == 4:
        return (s in A4 and d in B4) or (s in B4 and d in A4)
    return (s in A6 and d in B6) or (s in B6 and d in A6)


def main():
    sas = json.load(open(sys.argv[1]))
    table = {}
    for s in sas:
        crypt, auth = ALGS[s["enc"]]
        kw = dict(crypt_algo=crypt, crypt_key=bytes.fromhex(s["enc_key"]),
                  tunnel_header=IP(src=s["src"], dst=s["dst"]))
        if auth:
            kw.update(auth_algo=auth, auth_key=bytes.fromhex(s["integ_key"]))
        table[s["spi"]] = {"sa": SecurityAssociation(ESP, spi=s["spi"], **kw), "encap": s.get("encap", False),
                           "seen": 0, "decrypted": 0, "bad": 0, "inner": {}, "udp_encap": 0}
    clear = 0
    clear_examples = []
    for raw, _ in RawPcapReader(sys.argv[2]):
        eth = Ether(raw)
        ip = eth.payload
        if not isinstance(ip, (IP, IPv6)):
            continue
        esp = None
        if isinstance(ip, IP) and ip.proto == 50:
            esp = ip
        elif isinstance(ip, IP) and ip.haslayer(UDP) and ip[UDP].dport == 4500 and len(bytes(ip[UDP].payload)) > 8:
            pl = bytes(ip[UDP].payload)
            if pl[:4] != b"\0\0\0\0":
                esp = IP(src=ip.src, dst=ip.dst, proto=50) / ESP(pl)
                esp = IP(bytes(esp))
        if esp is None:
            if protected_pair(ip.src, ip.dst):
                clear += 1
                if len(clear_examples) < 3:
                    clear_examples.append(ip.summary())
            continue
        spi = int.from_bytes(bytes(esp.payload)[:4], "big")
        e = table.get(spi)
        if e is None:
            continue
        e["seen"] += 1
        if ip.haslayer(UDP):
            e["udp_encap"] += 1
        try:
            inner = e["sa"].decrypt(esp)
        except Exception:  # noqa: BLE001 - any failure is an ICV/padding failure here
            e["bad"] += 1
            continue
        e["decrypted"] += 1
        kind = "other"
        if inner.haslayer(ICMP):
            kind = {8: "icmp_echo_request", 0: "icmp_echo_reply"}.get(inner[ICMP].type, "icmp")
        elif inner.haslayer(ICMPv6EchoRequest):
            kind = "icmpv6_echo_request"
        elif inner.haslayer(ICMPv6EchoReply):
            kind = "icmpv6_echo_reply"
        elif inner.haslayer(TCP):
            kind = "tcp"
        elif inner.haslayer(UDP):
            kind = "udp"
        e["inner"][kind] = e["inner"].get(kind, 0) + 1
    out = {"cleartext_between_protected_ranges": clear, "cleartext_examples": clear_examples,
           "sas": {hex(k): {x: v[x] for x in ("seen", "decrypted", "bad", "udp_encap", "inner")}
                   for k, v in table.items()}}
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
