#!/bin/bash
# Interop test: Wireshark's ESP dissector (tshark) as an independent reader
# of what Cygnet's ESP engine sends.
#
#   esp_tshark_test.sh PATH/TO/esp_tool
#
# For every algorithm pair tshark 4.0 can decrypt and check (AES-GCM-128/256
# with a 16-byte ICV; AES-CBC-128/256 and NULL encryption, each with
# HMAC-SHA1-96, HMAC-SHA-256-128, HMAC-SHA-384-192 and HMAC-SHA-512-256), in
# tunnel mode (4in4, 6in6, 4in6, 6in4) and transport mode (v4, v6), with and
# without RFC 3948 UDP encapsulation, esp_tool --dir out encrypts ICMP echo
# and UDP packets (payloads 0..1400 bytes). One pcap holds them all, one
# esp_sa UAT holds all the SAs, and one tshark run must show for each packet:
# the right SPI and sequence number, "ICV good", the next header, the
# decrypted inner ICMP/UDP with a good checksum and exactly the payload we
# sent. A copy of each case's last packet with one flipped ciphertext bit
# must be reported with a bad ICV.
#
# Not covered here (tshark 4.0 limits): ChaCha20-Poly1305 (not in the ESP
# dissector) and ESN (the esp_sa UAT has no ESN setting, so the ICV of an ESN
# SA cannot be checked); esp_scapy_test.py covers both.
#
# Exit status: 0 all passed, 1 failure, 77 (skip) if tshark is missing.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PATH/TO/esp_tool" >&2
  exit 2
fi
if ! command -v tshark >/dev/null 2>&1; then
  echo "SKIP: tshark is not installed"
  exit 77
fi
py=/usr/bin/python3
[[ -x $py ]] || py=python3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/esp_tshark.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# A private copy of the engine: a rebuild during the test must not swap it.
cp "$1" "$tmp/esp_tool"
start=$SECONDS
tshark --version 2>/dev/null | head -1

cat >"$tmp/esp_tshark.py" <<'PY'
"""Generator (gen) and checker (check) for esp_tshark_test.sh. Plain
Python 3: builds packets by hand, so it needs neither scapy nor tshark."""
import json
import os
import random
import socket
import struct
import subprocess
import sys

TMP = sys.argv[1]
NATT = 4500

# ours -> (key bytes, tshark name); AEAD ciphers take key || 4-byte salt
ENC = {
    "aes-gcm16-128": (20, "AES-GCM with 16 octet ICV [RFC4106]"),
    "aes-gcm16-256": (36, "AES-GCM with 16 octet ICV [RFC4106]"),
    "aes-cbc-128": (16, "AES-CBC [RFC3602]"),
    "aes-cbc-256": (32, "AES-CBC [RFC3602]"),
    "null": (0, "NULL"),
}
INTEG = {
    "none": (0, "NULL"),
    "hmac-sha1-96": (20, "HMAC-SHA-1-96 [RFC2404]"),
    "hmac-sha256-128": (32, "HMAC-SHA-256-128 [RFC4868]"),
    "hmac-sha384-192": (48, "HMAC-SHA-384-192 [RFC4868]"),
    "hmac-sha512-256": (64, "HMAC-SHA-512-256 [RFC4868]"),
}
PAIRS = [("aes-gcm16-128", "none"), ("aes-gcm16-256", "none")] + [
    (e, i) for e in ("aes-cbc-128", "aes-cbc-256", "null") for i in list(INTEG)[1:]]
MODES = {  # name -> (tunnel, outer family, inner family)
    "tunnel-4in4": (True, 4, 4), "tunnel-6in6": (True, 6, 6),
    "tunnel-4in6": (True, 6, 4), "tunnel-6in4": (True, 4, 6),
    "transport-v4": (False, 4, 4), "transport-v6": (False, 6, 6),
}
OUTER = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}
INNER = {4: ("10.1.0.1", "10.2.0.1"), 6: ("2001:db8:1::1", "2001:db8:2::1")}
ICMP_SIZES = [0, 1, 16, 100, 1400]
UDP_SIZES = [0, 33, 1000]


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def addr(fam, a):
    return socket.inet_pton(socket.AF_INET if fam == 4 else socket.AF_INET6, a)


def ip_packet(fam, src, dst, proto, l4):
    """IP header + l4, with the L4 checksum (at l4_csum_off) filled in."""
    s, d = addr(fam, src), addr(fam, dst)
    if fam == 4:
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0x1234, 0x4000, 64, proto, 0, s, d)
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        return h + l4
    return struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, s, d) + l4


def with_l4_csum(fam, src, dst, proto, l4, off):
    s, d = addr(fam, src), addr(fam, dst)
    if fam == 4 and proto == 1:  # ICMP: no pseudo header
        c = csum(l4)
    elif fam == 4:
        c = csum(s + d + struct.pack("!BBH", 0, proto, len(l4)) + l4)
    else:
        c = csum(s + d + struct.pack("!I3xB", len(l4), proto) + l4)
    if proto == 17 and c == 0:
        c = 0xffff
    return l4[:off] + struct.pack("!H", c) + l4[off + 2:]


def icmp_echo(fam, src, dst, ident, seq, payload):
    proto, typ = (1, 8) if fam == 4 else (58, 128)
    l4 = struct.pack("!BBHHH", typ, 0, 0, ident, seq) + payload
    return ip_packet(fam, src, dst, proto, with_l4_csum(fam, src, dst, proto, l4, 2))


def udp(fam, src, dst, sport, dport, payload):
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ip_packet(fam, src, dst, 17, with_l4_csum(fam, src, dst, 17, l4, 6))


def gen():
    rng = random.Random(4303)
    os.makedirs(os.path.join(TMP, "ws"), exist_ok=True)
    uat, frames, spi = [], [], 0x20000
    for enc, integ in PAIRS:
        for mode, (tunnel, ofam, ifam) in MODES.items():
            for encap in (False, True):
                spi += 1
                ek = rng.randbytes(ENC[enc][0])
                ik = rng.randbytes(INTEG[integ][0])
                osrc, odst = OUTER[ofam]
                isrc, idst = INNER[ifam] if tunnel else OUTER[ifam]
                sa = (f'{{ spi = 0x{spi:x}; dir = "out"; src = "{osrc}"; dst = "{odst}"; '
                      f'mode = "{"tunnel" if tunnel else "transport"}"; enc = "{enc}"; '
                      + (f'enc_key = "0x{ek.hex()}"; ' if ek else "")
                      + f'integ = "{integ}"; ' + (f'integ_key = "0x{ik.hex()}"; ' if ik else "")
                      + (f"encap = {{ sport = {NATT}; dport = {NATT}; }}; " if encap else "") + "}")
                cfg = os.path.join(TMP, f"sa-{spi:x}.conf")
                fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(f"sas = ( {sa} );\n")
                # every field quoted: protocol, src, dst, SPI, encryption,
                # encryption key, authentication, authentication key
                uat.append(",".join(f'"{v}"' for v in (
                    "IPv4" if ofam == 4 else "IPv6", osrc, odst, f"0x{spi:08x}", ENC[enc][1],
                    f"0x{ek.hex()}" if ek else "", INTEG[integ][1], f"0x{ik.hex()}" if ik else "")))
                case = f"{enc}/{integ} {mode} encap={int(encap)}"
                pkts = []
                for n in ICMP_SIZES:
                    pl = bytes((i * 7 + n) & 0xff for i in range(n))
                    pkts.append(("icmp", icmp_echo(ifam, isrc, idst, 0x4242, n, pl), pl))
                for n in UDP_SIZES:
                    pl = rng.randbytes(n)
                    pkts.append(("udp", udp(ifam, isrc, idst, 40000 + n, 50000, pl), pl))
                r = subprocess.run([os.path.join(TMP, "esp_tool"), "--config", cfg, "--spi", hex(spi),
                                    "--dir", "out", "--burst", "8"],
                                   input="".join(p.hex() + "\n" for _, p, _ in pkts),
                                   capture_output=True, text=True, check=False)
                out = r.stdout.splitlines()
                if r.returncode != 0 or len(out) != len(pkts) or not all(l.startswith("ok ") for l in out):
                    print(f"FAIL {case}: esp_tool exit {r.returncode}: {r.stderr.strip()} {out[:3]}")
                    sys.exit(1)
                for seq, ((kind, inner, pl), line) in enumerate(zip(pkts, out), 1):
                    frames.append(dict(case=case, spi=spi, seq=seq, kind=kind, fam=ifam, tunnel=tunnel,
                                       src=isrc, payload=pl.hex(), good=True, wire=line[3:]))
                # the last packet (UDP, 1000 bytes) again with one bit flipped:
                # in the middle of the ciphertext (only payload bytes decrypt
                # differently, so tshark still dissects the inner packet and
                # reaches the ICV), and in the ICV
                last = bytes.fromhex(out[-1][3:])
                hl = (last[0] & 0x0f) * 4 if last[0] >> 4 == 4 else 40
                esp = hl + (8 if encap else 0)
                iv = 8 if enc.startswith("aes-gcm") else 16 if enc.startswith("aes-cbc") else 0
                for where in ("ciphertext", "ICV"):
                    b = bytearray(last)
                    b[esp + 8 + iv + (len(b) - esp - 8 - iv) // 2 if where == "ciphertext" else -1] ^= 0x10
                    if encap and ofam == 6:  # keep the UDP checksum right: only the ICV may fail
                        u = bytes(b[40:48])
                        b[40:] = with_l4_csum(6, osrc, odst, 17, u[:6] + b"\0\0" + bytes(b[48:]), 6)
                    frames.append(dict(case=case, spi=spi, seq=len(pkts), kind=f"flipped {where} bit",
                                       fam=ifam, tunnel=tunnel, src=isrc, payload="", good=False,
                                       wire=b.hex()))
    with open(os.path.join(TMP, "ws", "esp_sa"), "w") as f:
        f.write("# esp_tshark_test.sh\n" + "\n".join(uat) + "\n")
    # pcap with Ethernet framing
    with open(os.path.join(TMP, "esp.pcap"), "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            ip = bytes.fromhex(fr.pop("wire"))
            eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + (b"\x08\x00" if ip[0] >> 4 == 4 else b"\x86\xdd") + ip
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(eth), len(eth)) + eth)
    with open(os.path.join(TMP, "manifest.json"), "w") as f:
        json.dump(frames, f)
    print(f"{len(uat)} SAs, {len(frames)} frames")


FIELDS = ["frame.number", "esp.spi", "esp.sequence", "esp.icv_good", "esp.icv_bad", "esp.protocol",
          "ip.src", "ipv6.src", "icmp.type", "icmp.checksum.status", "icmpv6.type",
          "icmpv6.checksum.status", "udp.dstport", "udp.checksum.status", "ip.checksum.status", "data.data"]


def check():
    frames = json.load(open(os.path.join(TMP, "manifest.json")))
    rows = {}
    for line in open(os.path.join(TMP, "fields.txt")):
        v = line.rstrip("\n").split("|")
        if len(v) == len(FIELDS):
            rows[int(v[0])] = dict(zip(FIELDS, v))
    cases = {}
    for i, fr in enumerate(frames, 1):
        errs = cases.setdefault(fr["case"], [])
        r = rows.get(i)
        what = f"frame {i} ({fr['kind']} seq {fr['seq']})"
        if r is None:
            errs.append(f"{what}: not in tshark's output")
            continue

        def bad(msg):
            errs.append(f"{what}: {msg}; tshark: {r}")

        for k in ("esp.spi", "esp.sequence", "esp.icv_good", "esp.icv_bad", "esp.protocol"):
            r[k] = r[k].split(",")[0]  # the outer ESP header (garbage may decode as more)
        if r["esp.spi"] == "" or int(r["esp.spi"], 0) != fr["spi"]:
            bad(f"SPI, want 0x{fr['spi']:x}")
            continue
        if r["esp.sequence"] != str(fr["seq"]):
            bad(f"sequence, want {fr['seq']}")
        if not fr["good"]:
            if r["esp.icv_bad"] not in ("1", "True") or r["esp.icv_good"] in ("1", "True"):
                bad("flipped bit not reported as a bad ICV")
            continue
        if r["esp.icv_good"] not in ("1", "True") or r["esp.icv_bad"] in ("1", "True"):
            bad("ICV not good")
        nh = (4 if fr["fam"] == 4 else 41) if fr["tunnel"] else \
            (17 if fr["kind"] == "udp" else 1 if fr["fam"] == 4 else 58)
        if r["esp.protocol"] == "" or int(r["esp.protocol"], 0) != nh:
            bad(f"next header, want {nh}")
        srcs = (r["ip.src"] + "," + r["ipv6.src"]).split(",")
        if fr["src"] not in srcs:
            bad(f"inner source {fr['src']} not decoded")
        if r["ip.checksum.status"] and set(r["ip.checksum.status"].split(",")) != {"1"}:
            bad("IPv4 header checksum not good")
        if fr["kind"] == "icmp":
            t, st = ("icmp.type", "icmp.checksum.status") if fr["fam"] == 4 else \
                ("icmpv6.type", "icmpv6.checksum.status")
            if r[t] != ("8" if fr["fam"] == 4 else "128") or r[st] != "1":
                bad("no ICMP echo request with a good checksum")
        else:
            # 1 good; 3 "not present" is the zero checksum of ESP-in-UDP over IPv4
            if r["udp.dstport"].split(",")[-1] != "50000" or \
                    not set(r["udp.checksum.status"].split(",")) <= {"1", "3"} or \
                    r["udp.checksum.status"].split(",")[-1] != "1":
                bad("no inner UDP datagram with a good checksum")
        if r["data.data"].replace(":", "") != fr["payload"]:
            bad(f"payload, want {fr['payload'][:64]}...")
    failed = 0
    for case, errs in cases.items():
        n = sum(1 for f in frames if f["case"] == case)
        print(f"{'FAIL' if errs else 'PASS'} {case:<48} {n} frames ({n - 2} decrypted, 2 flipped)")
        for e in errs[:6]:
            print("    " + e[:600])
        failed += bool(errs)
    print(f"\n{len(cases)} cases ({len(PAIRS)} algorithm pairs x {len(MODES)} modes x encap on/off), "
          f"{len(cases) - failed} passed, {failed} failed; {len(frames)} frames")
    sys.exit(1 if failed or not cases else 0)


gen() if sys.argv[2] == "gen" else check()
PY

"$py" "$tmp/esp_tshark.py" "$tmp" gen

fields=()
for f in frame.number esp.spi esp.sequence esp.icv_good esp.icv_bad esp.protocol ip.src ipv6.src \
         icmp.type icmp.checksum.status icmpv6.type icmpv6.checksum.status udp.dstport \
         udp.checksum.status ip.checksum.status data.data; do
  fields+=(-e "$f")
done
# The SAs are read from the esp_sa UAT file in a private configuration
# directory (one -o uat:esp_sa:... takes one SA only).
if ! WIRESHARK_CONFIG_DIR="$tmp/ws" HOME="$tmp" tshark -n -r "$tmp/esp.pcap" \
    -o esp.enable_encryption_decode:TRUE \
    -o esp.enable_authentication_check:TRUE \
    -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE \
    -d udp.port==4500,udpencap \
    -T fields -E separator='|' -E occurrence=a -E aggregator=, "${fields[@]}" \
    >"$tmp/fields.txt" 2>"$tmp/tshark.err"; then
  echo "FAIL: tshark failed:"
  cat "$tmp/tshark.err"
  exit 1
fi
grep -v 'Running as user' "$tmp/tshark.err" >&2 || true

rc=0
"$py" "$tmp/esp_tshark.py" "$tmp" check || rc=$?
echo "runtime $((SECONDS - start)) s"
exit "$rc"
