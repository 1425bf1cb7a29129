#!/usr/bin/python3
"""Check that a pcap of outbound ESP (what a gateway sent for gen_pcap.py's
flows) decrypts with the SAs of an ipsec-secgw or cygnet-dp config, with
scapy.

  esp_check.py (--cfg secgw.cfg | --cygnet dp.conf) [--expect N] [--flows N] ESP.pcap

For every packet: outer IPv4 must be the SA's tunnel (src/dst), the SPI one
of the config's outbound SPIs, the ICV must verify and the inner packet must
be IPv4/UDP to the destination of the SA's policy, i.e. flow i of
gen_pcap.py went through SA i. ipsec-secgw: `sa out` lines and `sp ipv4 out
... protect SPI ... dst A/32`. cygnet-dp (libconfig, docs/configuration.md):
the `sas` with dir "out" and mode "tunnel", and the "out" "protect"
policies of the same reqid; the inner destination must lie in one of that
reqid's policy dst prefixes. Prints a summary; exit 0 if every packet passed
(and at least --expect were read, and --flows distinct SPIs seen).
"""

import argparse
import ipaddress
import re
import sys

from scapy.all import ESP, IP, UDP, RawPcapReader, Ether
from scapy.layers.ipsec import SecurityAssociation

CIPHERS = {"aes-128-gcm": "AES-GCM", "aes-128-cbc": "AES-CBC", "aes-128-ctr": "AES-CTR"}
AUTHS = {"sha256-hmac": "SHA2-256-128", "sha1-hmac": "HMAC-SHA1-96"}


def hexkey(s):
    return bytes(int(x, 16) for x in s.split(":"))


def parse_cfg(path):
    """SPI -> (SecurityAssociation, expected inner dst) for every `sa out`."""
    sas, dst_of = {}, {}
    with open(path) as f:
        for line in f:
            t = line.split()
            if len(t) < 2 or t[0].startswith("#"):
                continue
            if t[0] == "sp" and t[1] == "ipv4" and t[2] == "out" and "protect" in t and "dst" in t:
                dst_of[int(t[t.index("protect") + 1])] = t[t.index("dst") + 1]
            if t[0] == "sa" and t[1] == "out":
                spi = int(t[2])
                kv = {t[j]: t[j + 1] for j in range(3, len(t) - 1)}
                kw = {}
                if "aead_algo" in kv:
                    kw["crypt_algo"] = CIPHERS[kv["aead_algo"]]
                    kw["crypt_key"] = hexkey(kv["aead_key"])
                else:
                    kw["crypt_algo"] = CIPHERS[kv["cipher_algo"]]
                    kw["crypt_key"] = hexkey(kv["cipher_key"])
                    kw["auth_algo"] = AUTHS[kv["auth_algo"]]
                    kw["auth_key"] = hexkey(kv["auth_key"])
                if kv.get("mode") != "ipv4-tunnel":
                    raise SystemExit(f"esp_check: SA {spi}: only ipv4-tunnel is handled")
                src, dst = kv["src"], kv["dst"]
                sas[spi] = (SecurityAssociation(ESP, spi=spi, tunnel_header=IP(src=src, dst=dst), **kw),
                            src, dst)
    return {spi: (sa, src, dst, dst_of.get(spi)) for spi, (sa, src, dst) in sas.items()}


# ---- a small reader of the libconfig syntax cygnet-dp's files use ----
_TOKEN = re.compile(r'''\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|[-+]?0[xX][0-9a-fA-F]+L{0,2}|[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?L{0,2}|[A-Za-z*][-A-Za-z0-9_*]*|[=:;,{}()\[\]]''', re.S)


def _tokens(text):
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SystemExit(f"esp_check: cannot parse the config near {text[pos:pos + 40]!r}")
        pos = m.end()
        t = m.group(0)
        if t[0].isspace() or t[0] == "#" or t.startswith("//") or t.startswith("/*"):
            continue
        yield t


def parse_libconfig(text):
    """The settings of a libconfig file as a dict (groups: dicts, lists and
    arrays: lists, strings: str, integers: int, true/false: bool)."""
    toks = list(_tokens(text))
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take(expect=None):
        nonlocal pos
        t = peek()
        if t is None or (expect is not None and t != expect):
            raise SystemExit(f"esp_check: config: expected {expect or 'more'}, found {t!r}")
        pos += 1
        return t

    def value():
        t = take()
        if t == "{":
            return settings("}")
        if t in "([":
            close = ")" if t == "(" else "]"
            out = []
            while peek() != close:
                out.append(value())
                if peek() == ",":
                    take()
            take(close)
            return out
        if t.startswith('"'):
            s = t[1:-1].encode().decode("unicode_escape")
            while peek() is not None and peek().startswith('"'):  # adjacent strings concatenate
                s += take()[1:-1].encode().decode("unicode_escape")
            return s
        if t.lower() in ("true", "false"):
            return t.lower() == "true"
        t = t.rstrip("L")
        if t.lower().lstrip("+-").startswith("0x"):
            return int(t, 16)
        return float(t) if any(c in t for c in ".eE") else int(t)

    def settings(close):
        d = {}
        while peek() != close:
            name = take()
            if peek() in ("=", ":"):
                take()
            d[name] = value()
            if peek() in (";", ","):
                take()
        if close is not None:
            take(close)
        return d

    return settings(None)


CYGNET_ENC = {"aes-gcm16-128": "AES-GCM", "aes-gcm16-256": "AES-GCM", "aes-cbc-128": "AES-CBC",
              "aes-cbc-256": "AES-CBC"}
CYGNET_INTEG = {"hmac-sha256-128": "SHA2-256-128", "hmac-sha1-96": "HMAC-SHA1-96",
                "hmac-sha384-192": "SHA2-384-192", "hmac-sha512-256": "SHA2-512-256"}


def parse_cygnet(path):
    """SPI -> (SecurityAssociation, src, dst, [inner dst networks]) for the
    outbound tunnel SAs of a cygnet-dp config."""
    with open(path) as f:
        c = parse_libconfig(f.read())
    nets = {}
    for p in c.get("policies", []):
        if p.get("dir") == "out" and p.get("action") == "protect":
            nets.setdefault(p["reqid"], []).append(ipaddress.ip_network(p.get("dst", "0.0.0.0/0")))
    out = {}
    for s in c.get("sas", []):
        if s.get("dir") != "out":
            continue
        if s.get("mode", "tunnel") != "tunnel" or "encap" in s:
            raise SystemExit(f"esp_check: SA {s['spi']:#x}: only plain tunnel mode is handled")
        kw = {"crypt_algo": CYGNET_ENC[s["enc"]], "crypt_key": bytes.fromhex(s["enc_key"][2:])}
        if s.get("integ", "none") != "none":
            kw["auth_algo"] = CYGNET_INTEG[s["integ"]]
            kw["auth_key"] = bytes.fromhex(s["integ_key"][2:])
        sa = SecurityAssociation(ESP, spi=s["spi"], tunnel_header=IP(src=s["src"], dst=s["dst"]), **kw)
        out[s["spi"]] = (sa, s["src"], s["dst"], nets.get(s.get("reqid"), []))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pcap")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--cfg", help="ipsec-secgw config (secgw.sh config)")
    g.add_argument("--cygnet", help="cygnet-dp config (dp_config.py, or any with static SAs)")
    ap.add_argument("--expect", type=int, default=1, help="at least this many packets (default 1)")
    ap.add_argument("--flows", type=int, help="this many distinct SPIs must appear")
    a = ap.parse_args()

    if a.cfg:
        sas = {spi: (sa, src, dst, [ipaddress.ip_network(d)] if d else None)
               for spi, (sa, src, dst, d) in parse_cfg(a.cfg).items()}
    else:
        sas = parse_cygnet(a.cygnet)
    n = ok = 0
    spis = set()
    errors = {}

    def bad(why):
        errors[why] = errors.get(why, 0) + 1

    rd = RawPcapReader(a.pcap)
    try:
        for raw, _meta in rd:
            n += 1
            p = Ether(raw)
            if ESP not in p:
                bad("not ESP")
                continue
            ip = IP(bytes(p[IP]))
            spi = p[ESP].spi
            if spi not in sas:
                bad("unknown SPI")
                continue
            sa, src, dst, inner_dst = sas[spi]
            if (ip.src, ip.dst) != (src, dst):
                bad("wrong tunnel addresses")
                continue
            try:
                d = sa.decrypt(ip)
            except Exception:  # scapy raises IPSecIntegrityError or ValueError
                bad("ICV or decryption failed")
                continue
            if UDP not in d:
                bad("inner packet is not IPv4/UDP")
                continue
            if inner_dst is not None and not any(ipaddress.ip_address(d.dst) in n for n in inner_dst):
                bad("inner dst does not match the SA's policy")
                continue
            spis.add(spi)
            ok += 1
    finally:
        rd.close()
    print(f"esp_check: {n} packets, {ok} decrypted and matched their SA's policy, "
          f"{len(spis)} distinct SAs" + "".join(f"; {v} {k}" for k, v in errors.items()))
    if errors or n < a.expect or (a.flows is not None and len(spis) != a.flows):
        print("esp_check: FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
