#!/usr/bin/env python3
"""Expected values for cp/ike/crypto/crypto_test.cc, computed independently of
the C++ code with Python's own hmac/hashlib (and the `cryptography` package
for the AEAD and AES-CBC known answers).

    /usr/bin/python3 tests/vectors/ike_kdf_gen.py > tests/vectors/ike_kdf_vectors.json

The inputs are deterministic (SHA-256 of a label), so the output is
reproducible. Formulas: RFC 7296 sections 2.6 (cookies), 2.13 (prf+), 2.14
(SKEYSEED, SK_*), 2.15 (PSK AUTH), 2.17 (KEYMAT), 2.18 (rekey), 2.23 (NAT
detection); RFC 3526 section 3 (the MODP-2048 prime); RFC 5282 / RFC 7634
(salt | IV nonce).
"""
import hashlib
import hmac
import ipaddress
import json
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

HASH = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}
INTEG = {0: (None, 0, 0), 12: (hashlib.sha256, 32, 16), 13: (hashlib.sha384, 48, 24), 14: (hashlib.sha512, 64, 32)}


def det(label, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(("%s/%d" % (label, i)).encode()).digest()
        i += 1
    return out[:n]


def prf(p, key, data):
    return hmac.new(key, data, HASH[p]).digest()


def prf_plus(p, key, seed, length):
    out, t, n = b"", b"", 1
    while len(out) < length:
        assert n <= 255
        t = prf(p, key, t + seed + bytes([n]))
        out += t
        n += 1
    return out[:length]


def encr_len(encr, bits):
    if encr == 12:
        return bits // 8
    if encr == 20:
        return bits // 8 + 4
    if encr == 28:
        return 32 + 4
    raise ValueError(encr)


def h(b):
    return b.hex()


# ---- RFC 3526 section 3: p = 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 } ----
def floor_pi_times_2_pow(bits):
    guard = 64
    one = 1 << (bits + guard)

    def atan_inv(x):  # atan(1/x) * one, Taylor series in integers
        s, t, k, sign = 0, one // x, 1, 1
        while t:
            s += sign * (t // k)
            t //= x * x
            k += 2
            sign = -sign
        return s

    return (16 * atan_inv(5) - 4 * atan_inv(239)) >> guard  # Machin's formula


def modp2048_prime():
    p = 2**2048 - 2**1984 - 1 + 2**64 * (floor_pi_times_2_pow(1918) + 124476)
    return p.to_bytes(256, "big")


def ike_sa(label, p, encr, bits, integ, ni_len, nr_len, gir_len):
    ni, nr, gir = det(label + "/ni", ni_len), det(label + "/nr", nr_len), det(label + "/gir", gir_len)
    spi_i, spi_r = det(label + "/spii", 8), det(label + "/spir", 8)
    skeyseed = prf(p, ni + nr, gir)
    lp, la, le = HASH[p]().digest_size, INTEG[integ][1], encr_len(encr, bits)
    s = prf_plus(p, skeyseed, ni + nr + spi_i + spi_r, 3 * lp + 2 * la + 2 * le)
    keys, pos = {}, 0
    for name, n in (("sk_d", lp), ("sk_ai", la), ("sk_ar", la), ("sk_ei", le), ("sk_er", le), ("sk_pi", lp), ("sk_pr", lp)):
        keys[name] = h(s[pos:pos + n])
        pos += n
    return dict(prf=p, encr=encr, key_bits=bits, integ=integ, ni=h(ni), nr=h(nr), g_ir=h(gir), spi_i=h(spi_i),
                spi_r=h(spi_r), skeyseed=h(skeyseed), **keys)


def rekey(label, old_prf, p, encr, bits, integ):
    old_sk_d = det(label + "/oldskd", HASH[old_prf]().digest_size)
    ni, nr, gir = det(label + "/ni", 32), det(label + "/nr", 32), det(label + "/gir", 32)
    spi_i, spi_r = det(label + "/spii", 8), det(label + "/spir", 8)
    skeyseed = prf(old_prf, old_sk_d, gir + ni + nr)  # 2.18: the old SA's PRF
    lp, la, le = HASH[p]().digest_size, INTEG[integ][1], encr_len(encr, bits)
    s = prf_plus(p, skeyseed, ni + nr + spi_i + spi_r, 3 * lp + 2 * la + 2 * le)  # the new SA's PRF
    return dict(old_prf=old_prf, prf=p, encr=encr, key_bits=bits, integ=integ, old_sk_d=h(old_sk_d), g_ir=h(gir),
                ni=h(ni), nr=h(nr), spi_i=h(spi_i), spi_r=h(spi_r), skeyseed=h(skeyseed), sk_d=h(s[:lp]),
                sk_pr=h(s[-lp:]))


def child(label, p, encr, bits, integ, gir_len):
    sk_d = det(label + "/skd", HASH[p]().digest_size)
    ni, nr = det(label + "/ni", 32), det(label + "/nr", 48)
    gir = det(label + "/gir", gir_len) if gir_len else b""
    la, le = INTEG[integ][1], encr_len(encr, bits)
    s = prf_plus(p, sk_d, gir + ni + nr, 2 * (la + le))
    return dict(prf=p, encr=encr, key_bits=bits, integ=integ, sk_d=h(sk_d), g_ir=h(gir), ni=h(ni), nr=h(nr),
                encr_i=h(s[:le]), integ_i=h(s[le:le + la]), encr_r=h(s[le + la:2 * le + la]), integ_r=h(s[2 * le + la:]))


def psk_auth(label, p, psk, id_type, id_data, msg_len):
    msg, nonce = det(label + "/msg", msg_len), det(label + "/nonce", 32)
    sk_p = det(label + "/skp", HASH[p]().digest_size)
    id_body = bytes([id_type, 0, 0, 0]) + id_data
    maced = prf(p, sk_p, id_body)
    auth = prf(p, prf(p, psk, b"Key Pad for IKEv2"), msg + nonce + maced)
    return dict(prf=p, psk=h(psk), message=h(msg), nonce=h(nonce), sk_p=h(sk_p), id_body=h(id_body),
                maced_id=h(maced), auth=h(auth))


def nat(label, ip, port, zero_spir):
    spi_i = det(label + "/spii", 8)
    spi_r = bytes(8) if zero_spir else det(label + "/spir", 8)
    a = ipaddress.ip_address(ip).packed
    return dict(spi_i=h(spi_i), spi_r=h(spi_r), ip=ip, port=port,
                hash=h(hashlib.sha1(spi_i + spi_r + a + port.to_bytes(2, "big")).digest()))


def cookie(label, version, ip):
    secret, ni, spi_i = det(label + "/secret", 32), det(label + "/ni", 32), det(label + "/spii", 8)
    a = ipaddress.ip_address(ip).packed
    c = version.to_bytes(4, "big") + hashlib.sha256(ni + a + spi_i + secret).digest()
    return dict(version=version, secret=h(secret), ni=h(ni), ip=ip, spi_i=h(spi_i), cookie=h(c))


def aead(label, encr, bits, assoc_len, pt_len, extra_iv):
    km = det(label + "/key", encr_len(encr, bits))
    key, salt = km[:-4], km[-4:]
    assoc, pt = det(label + "/assoc", assoc_len), det(label + "/pt", pt_len)
    algo = AESGCM(key) if encr == 20 else ChaCha20Poly1305(key)
    cases = []
    for iv in (bytes(8), (1).to_bytes(8, "big"), extra_iv):  # the first two are what seal() uses first
        out = algo.encrypt(salt + iv, pt, assoc)
        cases.append(dict(iv=h(iv), ciphertext=h(out[:-16]), icv=h(out[-16:])))
    return dict(encr=encr, key_bits=bits, key=h(km), assoc=h(assoc), plaintext=h(pt), seals=cases)


def cbc(label, bits, integ, assoc_len, blocks):
    ek, ak = det(label + "/ek", bits // 8), det(label + "/ak", INTEG[integ][1])
    iv, assoc, pt = det(label + "/iv", 16), det(label + "/assoc", assoc_len), det(label + "/pt", 16 * blocks)
    enc = Cipher(algorithms.AES(ek), modes.CBC(iv)).encryptor()
    ct = enc.update(pt) + enc.finalize()
    md, _, trunc = INTEG[integ]
    icv = hmac.new(ak, assoc + iv + ct, md).digest()[:trunc]
    return dict(key_bits=bits, integ=integ, encr_key=h(ek), integ_key=h(ak), assoc=h(assoc), iv=h(iv),
                plaintext=h(pt), ciphertext=h(ct), icv=h(icv))


def main():
    prf_plus_cases = []
    for p in (5, 6, 7):
        hl = HASH[p]().digest_size
        key, seed = det("pp%d/key" % p, hl), det("pp%d/seed" % p, 80)
        for n in (1, hl - 1, hl, hl + 1, 3 * hl + 5, 255 * hl):
            out = prf_plus(p, key, seed, n)
            c = dict(prf=p, key=h(key), seed=h(seed), length=n)
            if n <= 400:
                c["out"] = h(out)
            else:
                c["out_sha256"] = hashlib.sha256(out).hexdigest()
            prf_plus_cases.append(c)

    doc = {
        "generator": "tests/vectors/ike_kdf_gen.py (Python hmac/hashlib, cryptography)",
        "modp2048_prime_sha256": hashlib.sha256(modp2048_prime()).hexdigest(),
        "prf_plus": prf_plus_cases,
        "ike_sa": [
            ike_sa("sa1", 5, 20, 256, 0, 32, 32, 32),
            ike_sa("sa2", 5, 12, 128, 12, 16, 16, 256),
            ike_sa("sa3", 7, 12, 256, 14, 64, 48, 66),
            ike_sa("sa4", 6, 28, 0, 0, 32, 24, 96),
            ike_sa("sa5", 7, 20, 128, 0, 256, 256, 256),
            ike_sa("sa6", 6, 12, 256, 13, 32, 32, 48),
        ],
        "rekey": [
            rekey("rk1", 5, 7, 20, 256, 0),
            rekey("rk2", 7, 5, 12, 128, 12),
        ],
        "child": [
            child("ch1", 5, 20, 256, 0, 0),
            child("ch2", 5, 20, 128, 0, 32),
            child("ch3", 7, 12, 256, 14, 0),
            child("ch4", 6, 12, 128, 12, 256),
            child("ch5", 6, 28, 0, 0, 0),
        ],
        "psk_auth": [
            psk_auth("pa1", 5, b"correct horse battery staple", 2, b"vpn.example.org", 300),
            psk_auth("pa2", 6, det("pa2/psk", 100), 1, bytes([192, 0, 2, 1]), 460),
            psk_auth("pa3", 7, b"s", 3, b"alice@example.org", 512),
        ],
        "nat": [
            nat("n1", "192.0.2.1", 500, True),
            nat("n2", "198.51.100.77", 4500, False),
            nat("n3", "2001:db8::1", 500, True),
            nat("n4", "2001:db8:ffff::abcd:1", 61234, False),
        ],
        "cookie": [
            cookie("c1", 1, "192.0.2.44"),
            cookie("c2", 0x01020304, "2001:db8::44"),
        ],
        "sk_aead": [
            aead("g128", 20, 128, 32, 64, det("g128/iv", 8)),
            aead("g256", 20, 256, 32, 100, det("g256/iv", 8)),
            aead("cc", 28, 0, 32, 77, det("cc/iv", 8)),
            aead("g256e", 20, 256, 28, 0, det("g256e/iv", 8)),
        ],
        "sk_cbc": [
            cbc("b1", 128, 12, 32, 4),
            cbc("b2", 256, 13, 32, 1),
            cbc("b3", 256, 14, 28, 7),
        ],
    }
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
