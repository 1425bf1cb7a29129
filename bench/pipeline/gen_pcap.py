#!/usr/bin/python3
"""Write a pcap of cleartext Ethernet/IPv4/UDP packets for the outbound
(protected -> unprotected) direction of an IPsec gateway benchmark.

  gen_pcap.py --size 64|1420|imix|N --flows N [--count C] [--dst-mac MAC]
              [--src-mac MAC] [--shuffle] [--no-verify] OUT.pcap

Sizes are Ethernet frame lengths as stored in the pcap and counted by DPDK
(pkt_len, ibytes): Ethernet header included, 4-byte FCS not included.
  64      -> IPv4 total length 50 (22 bytes of UDP payload)
  1420    -> IPv4 total length 1406
  imix    -> 7:4:1 of 64, 590 and 1514-byte frames, i.e. the classic
             "simple IMIX" IP packets of 576 and 1500 bytes plus the
             64-byte frame of --size 64 (IP lengths 50/576/1500), interleaved
             in a 12-packet cycle:
             64 590 64 64 590 64 1514 64 590 64 64 590
  N       -> any frame length from 60 to 9018

Flow i (0 <= i < N, N <= 100000) is the 5-tuple
  src 10.1.0.0 + (i & 0xffff)  sport 1024 + (i % 60000)
  dst 10.2.0.0 + i             dport 5001          proto UDP
so dst is 10.2.(i>>8).(i&255) for i < 65536 and continues into 10.3.x.y
(10.3.(i-65536>>8).(i&255)) above: every flow has its own /32 destination,
matching `secgw.sh config --sas N` (policy i: dst 10.2.0.0+i/32 -> SA i).
Packet k belongs to flow k % N (or a fixed-seed shuffle of that order with
--shuffle). --count defaults to max(N, 4096), rounded up to a whole IMIX
cycle for imix; it must be >= N so every flow appears.

IPv4 and UDP checksums are correct. Packets are built from raw bytes (fast
enough for 100k flows); a sample of them is re-parsed with scapy and its
checksums checked unless --no-verify.

--esp aes-gcm-128|aes-cbc-128-sha256 writes the inbound direction instead
(unprotected -> protected, `dp_config.py --inbound`): each frame above
becomes the inner packet of an ESP tunnel-mode packet 192.0.2.2 -> 192.0.2.1
of SA spi 0x1000+i for flow i, with dp_config.py's keys and sequence
numbers 1, 2, ... per SA (the IV is the sequence number, big-endian: unique
per SA and key). --size is the inner frame's length; the frame stored is
longer by the tunnel's overhead (GCM 20+8+8+16 = 52 B plus 0-3 B of padding,
CBC+HMAC-SHA256 20+8+16+16 = 60 B plus 0-15 B). Encryption uses python3's
`cryptography` module; the scapy check decrypts the sampled packets with
scapy's own ESP code and compares the inner packet.
"""

import argparse
import random
import struct
import sys

ETH_LEN = 14
IP_LEN = 20
UDP_LEN = 8
MIN_FRAME = ETH_LEN + IP_LEN + UDP_LEN  # 42; we require >= 60 (Ethernet minimum without FCS)
IMIX_CYCLE = [64, 590, 64, 64, 590, 64, 1514, 64, 590, 64, 64, 590]  # 7 x 64, 4 x 590, 1 x 1514
MAX_FLOWS = 100000
SRC_BASE = (10 << 24) | (1 << 16)   # 10.1.0.0
DST_BASE = (10 << 24) | (2 << 16)   # 10.2.0.0
DPORT = 5001
DEFAULT_DST_MAC = "02:70:63:61:70:00"  # DPDK net_pcap port 0's MAC ("\x02pcap" + 0)
DEFAULT_SRC_MAC = "02:00:00:00:01:01"


def flow_tuple(i):
    """(src_ip, dst_ip, sport, dport) of flow i, IPs as 32-bit ints."""
    return SRC_BASE + (i & 0xFFFF), DST_BASE + i, 1024 + (i % 60000), DPORT


def ip_str(a):
    return "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)


def parse_mac(s):
    parts = s.split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError(f"bad MAC address {s!r}")
    try:
        b = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad MAC address {s!r}") from None
    return b


def sum16(data):
    """One's-complement 16-bit sum (not folded to 16 bits, not inverted)."""
    if len(data) % 2:
        data = data + b"\0"
    return sum(struct.unpack("!%dH" % (len(data) // 2), data))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def payload(n):
    # A fixed, recognisable pattern; the same for every packet of a length.
    return bytes((0x30 + j) & 0xFF for j in range(n))


class Builder:
    def __init__(self, dst_mac, src_mac):
        self.eth = dst_mac + src_mac + b"\x08\x00"
        self.payloads = {}  # frame length -> (payload bytes, its sum16)

    def frame(self, frame_len, flow, ip_id):
        pl = self.payloads.get(frame_len)
        if pl is None:
            p = payload(frame_len - MIN_FRAME)
            pl = self.payloads[frame_len] = (p, sum16(p))
        data, data_sum = pl
        src, dst, sport, dport = flow_tuple(flow)
        ip_total = frame_len - ETH_LEN
        udp_len = ip_total - IP_LEN
        hdr = struct.pack("!BBHHHBBHII", 0x45, 0, ip_total, ip_id & 0xFFFF, 0, 64, 17, 0, src, dst)
        ip_csum = (~fold(sum16(hdr))) & 0xFFFF
        hdr = hdr[:10] + struct.pack("!H", ip_csum) + hdr[12:]
        # UDP checksum over the pseudo-header, the UDP header and the payload.
        s = ((src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 17 + udp_len
             + sport + dport + udp_len + data_sum)
        udp_csum = (~fold(s)) & 0xFFFF or 0xFFFF
        udp = struct.pack("!HHHH", sport, dport, udp_len, udp_csum)
        return self.eth + hdr + udp + data


ESP_SRC = (192 << 24) | (2 << 8) | 2   # 192.0.2.2: the peer gateway
ESP_DST = (192 << 24) | (2 << 8) | 1   # 192.0.2.1: our unprotected port
SPI_BASE = 0x1000


class EspBuilder:
    """Wraps Builder's cleartext frames in ESP (RFC 4303 tunnel mode)."""

    def __init__(self, alg, dst_mac, src_mac):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives import hashes, hmac
        import dp_config
        self.alg = alg
        self.eth = dst_mac + src_mac + b"\x08\x00"
        self.seq = {}
        if alg == "aes-gcm-128":
            k = bytes.fromhex(dp_config.GCM_KEY[2:])
            self.aead, self.salt = AESGCM(k[:16]), k[16:]
        else:
            self.key = bytes.fromhex(dp_config.CBC_KEY[2:])
            self.mac_key = bytes.fromhex(dp_config.HMAC_KEY[2:])
            self.Cipher, self.algorithms, self.modes = Cipher, algorithms, modes
            self.hashes, self.hmac = hashes, hmac

    def next_seq(self, flow):
        s = self.seq.get(flow, 0) + 1
        self.seq[flow] = s
        return s

    def frame(self, inner_frame, flow, ip_id):
        inner = inner_frame[ETH_LEN:]
        spi, seq = SPI_BASE + flow, self.next_seq(flow)
        esp_hdr = struct.pack("!II", spi, seq)
        block = 4 if self.alg == "aes-gcm-128" else 16
        pad = (-(len(inner) + 2)) % block
        plain = inner + bytes(range(1, pad + 1)) + bytes([pad, 4])  # next header 4: IPv4
        if self.alg == "aes-gcm-128":
            iv = struct.pack("!Q", seq)
            body = iv + self.aead.encrypt(self.salt + iv, plain, esp_hdr)  # ciphertext + 16-byte ICV
        else:
            iv = struct.pack("!QQ", spi, seq)
            enc = self.Cipher(self.algorithms.AES(self.key), self.modes.CBC(iv)).encryptor()
            ct = iv + enc.update(plain) + enc.finalize()
            h = self.hmac.HMAC(self.mac_key, self.hashes.SHA256())
            h.update(esp_hdr + ct)
            body = ct + h.finalize()[:16]
        total = IP_LEN + len(esp_hdr) + len(body)
        hdr = struct.pack("!BBHHHBBHII", 0x45, 0, total, ip_id & 0xFFFF, 0, 64, 50, 0, ESP_SRC, ESP_DST)
        csum = (~fold(sum16(hdr))) & 0xFFFF
        hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
        return self.eth + hdr + esp_hdr + body


def verify_esp(path, alg, count, clear_frame, order, samples):
    """Decrypt a spread of packets with scapy's ESP and compare the inner packet."""
    try:
        from scapy.all import IP
        from scapy.layers.ipsec import ESP, SecurityAssociation
    except ImportError:
        return scapy_missing()
    import dp_config
    if alg == "aes-gcm-128":
        kw = {"crypt_algo": "AES-GCM", "crypt_key": bytes.fromhex(dp_config.GCM_KEY[2:])}
    else:
        kw = {"crypt_algo": "AES-CBC", "crypt_key": bytes.fromhex(dp_config.CBC_KEY[2:]),
              "auth_algo": "SHA2-256-128", "auth_key": bytes.fromhex(dp_config.HMAC_KEY[2:])}

    def check(k, pkt):
        flow = order(k)
        if IP not in pkt or ESP not in pkt:
            return ["not Ether/IP/ESP"]
        problems = []
        ip = pkt[IP]
        if (ip.src, ip.dst) != (ip_str(ESP_SRC), ip_str(ESP_DST)):
            problems.append(f"tunnel {ip.src} -> {ip.dst}")
        if pkt[ESP].spi != SPI_BASE + flow:
            problems.append(f"SPI {pkt[ESP].spi:#x} != {SPI_BASE + flow:#x} (flow {flow})")
        sa = SecurityAssociation(ESP, spi=pkt[ESP].spi,
                                 tunnel_header=IP(src=ip_str(ESP_SRC), dst=ip_str(ESP_DST)), **kw)
        try:
            if bytes(sa.decrypt(IP(bytes(ip)))) != clear_frame(k)[ETH_LEN:]:
                problems.append("decrypted inner packet differs from the cleartext one")
        except Exception as e:  # scapy raises on a bad ICV or padding
            problems.append(f"scapy cannot decrypt it: {type(e).__name__} {e}")
        return problems

    return check_samples(path, count, samples, check)


def write_pcap(path, frames_iter):
    n = 0
    with open(path, "wb") as f:
        # pcap global header: magic, v2.4, tz 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        chunk = []
        for k, fr in enumerate(frames_iter):
            # Timestamps 1 us apart (irrelevant to net_pcap's infinite_rx).
            chunk.append(struct.pack("<IIII", k // 1000000, k % 1000000, len(fr), len(fr)))
            chunk.append(fr)
            n += 1
            if len(chunk) >= 8192:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))
    return n


def scapy_missing():
    print("gen_pcap: scapy is not installed (apt-get install python3-scapy); "
          "use --no-verify to skip the check", file=sys.stderr)
    return False


def check_samples(path, count, samples, check):
    """Dissect a spread of `samples` of the `count` packets with scapy;
    check(k, Ether packet) returns a list of problems. True if none."""
    from scapy.all import Ether, RawPcapReader
    want = set(range(min(samples, count)))
    if count > samples:
        step = count / samples
        want = {int(j * step) for j in range(samples)} | {count - 1}
    ok = True
    checked = 0
    rd = RawPcapReader(path)
    try:
        for k, (raw, _meta) in enumerate(rd):
            if k not in want:
                continue  # only the sampled packets are dissected (scapy is slow)
            checked += 1
            problems = check(k, Ether(raw))
            if problems:
                ok = False
                print(f"gen_pcap: packet {k}: " + "; ".join(problems), file=sys.stderr)
    finally:
        rd.close()
    if checked != len(want):
        print(f"gen_pcap: read back {checked} of {len(want)} sampled packets", file=sys.stderr)
        ok = False
    return ok


def verify(path, count, flows, sizes_of, order, samples):
    """Re-read a spread of packets with scapy and check fields and checksums."""
    try:
        from scapy.all import Ether, IP, UDP
    except ImportError:
        return scapy_missing()

    def check(k, pkt):
        flow = order(k)
        src, dst, sport, dport = flow_tuple(flow)
        problems = []
        if len(pkt) != sizes_of(k):
            problems.append(f"length {len(pkt)} != {sizes_of(k)}")
        if IP not in pkt or UDP not in pkt:
            problems.append("not Ether/IP/UDP")
        else:
            ip, udp = pkt[IP], pkt[UDP]
            if (ip.src, ip.dst, udp.sport, udp.dport) != (ip_str(src), ip_str(dst), sport, dport):
                problems.append(f"5-tuple {ip.src}:{udp.sport}->{ip.dst}:{udp.dport} "
                                f"!= flow {flow}")
            ref = Ether(bytes(pkt))
            del ref[IP].chksum
            del ref[UDP].chksum
            ref = Ether(bytes(ref))
            if ref[IP].chksum != ip.chksum:
                problems.append(f"IP checksum {ip.chksum:#06x} != {ref[IP].chksum:#06x}")
            if ref[UDP].chksum != udp.chksum:
                problems.append(f"UDP checksum {udp.chksum:#06x} != {ref[UDP].chksum:#06x}")
        return problems

    return check_samples(path, count, samples, check)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("out", help="pcap file to write")
    ap.add_argument("--size", default="64", help="frame length: 64, 1420, imix or a number (default 64)")
    ap.add_argument("--flows", type=int, default=1, help=f"distinct flows, 1..{MAX_FLOWS} (default 1)")
    ap.add_argument("--count", type=int, help="total packets (default max(flows, 4096))")
    ap.add_argument("--dst-mac", type=parse_mac, default=parse_mac(DEFAULT_DST_MAC),
                    help=f"destination MAC, the dataplane port's (default {DEFAULT_DST_MAC})")
    ap.add_argument("--src-mac", type=parse_mac, default=parse_mac(DEFAULT_SRC_MAC),
                    help=f"source MAC (default {DEFAULT_SRC_MAC})")
    ap.add_argument("--shuffle", action="store_true",
                    help="shuffle the packet order (fixed seed) instead of cycling flows 0,1,2,...")
    ap.add_argument("--esp", choices=["aes-gcm-128", "aes-cbc-128-sha256"],
                    help="inbound: wrap each frame in ESP of SA 0x1000+flow (see below)")
    ap.add_argument("--no-verify", action="store_true", help="skip the scapy read-back check")
    ap.add_argument("--verify-samples", type=int, default=64, help="packets checked with scapy (default 64)")
    a = ap.parse_args()

    if a.size == "imix":
        cycle = IMIX_CYCLE
    else:
        try:
            n = int(a.size)
        except ValueError:
            ap.error(f"--size must be 64, 1420, imix or a frame length, not {a.size!r}")
        if not 60 <= n <= 9018:
            ap.error("--size: frame length must be 60..9018 bytes")
        cycle = [n]
    if not 1 <= a.flows <= MAX_FLOWS:
        ap.error(f"--flows must be 1..{MAX_FLOWS}")
    count = a.count
    if count is None:
        count = max(a.flows, 4096)
        count = -(-count // len(cycle)) * len(cycle)
    if count < a.flows:
        ap.error(f"--count {count} is smaller than --flows {a.flows}: some flows would be missing")

    if a.shuffle:
        perm = list(range(count))
        random.Random(1).shuffle(perm)

        def order(k):
            return perm[k] % a.flows
    else:
        def order(k):
            return k % a.flows

    def sizes_of(k):
        return cycle[k % len(cycle)]

    b = Builder(a.dst_mac, a.src_mac)
    if a.esp:
        eb = EspBuilder(a.esp, a.dst_mac, a.src_mac)
        stored = []

        def frames():
            for k in range(count):
                fr = eb.frame(b.frame(sizes_of(k), order(k), k), order(k), k)
                stored.append(len(fr))
                yield fr
        n = write_pcap(a.out, frames())
        print(f"gen_pcap: wrote {n} ESP packets ({a.esp}), {a.flows} SAs/flows, inner size {a.size} "
              f"(mean inner frame {sum(sizes_of(k) for k in range(count)) / n:.1f} B, "
              f"mean stored frame {sum(stored) / n:.1f} B) to {a.out}")
        if not a.no_verify:
            if not verify_esp(a.out, a.esp, count, lambda k: b.frame(sizes_of(k), order(k), k), order,
                              a.verify_samples):
                print("gen_pcap: verification FAILED", file=sys.stderr)
                return 1
            print(f"gen_pcap: scapy decrypted {min(a.verify_samples, count)}+ sampled packets: inner packets match")
        return 0
    n = write_pcap(a.out, (b.frame(sizes_of(k), order(k), k) for k in range(count)))
    total = sum(sizes_of(k) for k in range(count))
    print(f"gen_pcap: wrote {n} packets, {a.flows} flows, size {a.size} "
          f"(mean frame {total / n:.1f} B) to {a.out}")
    if not a.no_verify:
        if not verify(a.out, count, a.flows, sizes_of, order, a.verify_samples):
            print("gen_pcap: verification FAILED", file=sys.stderr)
            return 1
        print(f"gen_pcap: scapy check of {min(a.verify_samples, count)}+ sampled packets passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
