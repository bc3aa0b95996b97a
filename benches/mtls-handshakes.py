#!/usr/bin/env python3
"""TLS handshakes in a packet capture (pcap, as `tcpdump -w` writes it) of one TCP port:
for benches/proxy-compare.sh, which captures the hop between a client sidecar and a
server sidecar while a load generator opens a new connection per request, to show how
many handshakes happened, how many were resumed (PSK), and what was negotiated.

Everything read is in the clear in TLS 1.3: the ClientHello (is a pre_shared_key
offered?) and the ServerHello (version, cipher suite, key-share group, and whether the
server accepted the PSK, i.e. resumed the session instead of a full handshake with
certificates). A HelloRetryRequest (a ServerHello with the special random) is counted
apart. Only the Python standard library.

Usage: mtls-handshakes.py --pcap FILE --port SERVER_PORT [--json]
Prints one line of key=value pairs (or JSON): server_hellos, hrr, resumed, full,
client_hellos, psk_offered, versions, ciphers, groups, connections (SYNs to the port).
"""

import argparse
import collections
import json
import struct
import sys

HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
CIPHERS = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}
GROUPS = {
    0x0017: "secp256r1",
    0x0018: "secp384r1",
    0x001D: "x25519",
    0x11EC: "X25519MLKEM768",
    0x6399: "X25519Kyber768Draft00",
}
VERSIONS = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2"}
EXT_PSK = 41
EXT_SUPPORTED_VERSIONS = 43
EXT_KEY_SHARE = 51


def packets(path):
    """(ip payload's TCP src port, dst port, flags, tcp payload) of each IPv4/IPv6 TCP packet."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a pcap file (pcapng is not read; use tcpdump -w)")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if linktype == 1:  # Ethernet (Linux lo)
            if len(frame) < 14:
                continue
            ethertype = struct.unpack("!H", frame[12:14])[0]
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked v1
            ethertype = struct.unpack("!H", frame[14:16])[0]
            ip = frame[16:]
        elif linktype == 276:  # Linux cooked v2
            ethertype = struct.unpack("!H", frame[0:2])[0]
            ip = frame[20:]
        elif linktype in (101, 12, 14):  # raw IP
            ip = frame
            ethertype = 0x0800 if ip and ip[0] >> 4 == 4 else 0x86DD
        elif linktype == 0:  # BSD loopback
            ip = frame[4:]
            ethertype = 0x0800 if ip and ip[0] >> 4 == 4 else 0x86DD
        else:
            raise SystemExit(f"{path}: link type {linktype} is not read")
        if ethertype == 0x0800:
            if len(ip) < 20 or ip[9] != 6:
                continue
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            tcp = ip[ihl:total] if total >= ihl else ip[ihl:]
        elif ethertype == 0x86DD:
            if len(ip) < 40 or ip[6] != 6:
                continue
            tcp = ip[40:]
        else:
            continue
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack("!HH", tcp[0:4])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        yield sport, dport, flags, tcp[doff:]


def extensions(body, pos):
    """{type: data} of a hello's extensions block starting at pos."""
    out = {}
    if pos + 2 > len(body):
        return out
    (total,) = struct.unpack("!H", body[pos:pos + 2])
    pos += 2
    end = min(len(body), pos + total)
    while pos + 4 <= end:
        etype, elen = struct.unpack("!HH", body[pos:pos + 4])
        out[etype] = body[pos + 4:pos + 4 + elen]
        pos += 4 + elen
    return out


def hello(payload):
    """(handshake type, body) if the segment starts with a TLS handshake record."""
    if len(payload) < 9 or payload[0] != 0x16 or payload[1] != 0x03:
        return None
    htype = payload[5]
    hlen = int.from_bytes(payload[6:9], "big")
    return htype, payload[9:9 + hlen]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    c = collections.Counter()
    versions, ciphers, groups = collections.Counter(), collections.Counter(), collections.Counter()
    for sport, dport, flags, payload in packets(a.pcap):
        if dport == a.port and flags & 0x02 and not flags & 0x10:  # SYN
            c["connections"] += 1
        h = hello(payload)
        if h is None:
            continue
        htype, body = h
        if htype == 1 and dport == a.port:  # ClientHello
            c["client_hellos"] += 1
            pos = 2 + 32
            if pos >= len(body):
                continue
            pos += 1 + body[pos]  # session id
            (n,) = struct.unpack("!H", body[pos:pos + 2])
            pos += 2 + n  # cipher suites
            pos += 1 + body[pos]  # compression
            if EXT_PSK in extensions(body, pos):
                c["psk_offered"] += 1
        elif htype == 2 and sport == a.port:  # ServerHello
            if body[2:34] == HRR_RANDOM:
                c["hrr"] += 1
                continue
            c["server_hellos"] += 1
            pos = 2 + 32
            pos += 1 + body[pos]
            (cipher,) = struct.unpack("!H", body[pos:pos + 2])
            pos += 3
            ext = extensions(body, pos)
            version = struct.unpack("!H", body[0:2])[0]
            if EXT_SUPPORTED_VERSIONS in ext and len(ext[EXT_SUPPORTED_VERSIONS]) >= 2:
                version = struct.unpack("!H", ext[EXT_SUPPORTED_VERSIONS][:2])[0]
            versions[VERSIONS.get(version, hex(version))] += 1
            ciphers[CIPHERS.get(cipher, hex(cipher))] += 1
            if EXT_KEY_SHARE in ext and len(ext[EXT_KEY_SHARE]) >= 2:
                g = struct.unpack("!H", ext[EXT_KEY_SHARE][:2])[0]
                groups[GROUPS.get(g, hex(g))] += 1
            else:
                groups["none(psk_ke)"] += 1
            if EXT_PSK in ext:
                c["resumed"] += 1
            else:
                c["full"] += 1
    out = {k: c[k] for k in ("connections", "client_hellos", "psk_offered", "server_hellos", "hrr", "full", "resumed")}

    def fmt(counter):
        return ",".join(f"{k}:{v}" for k, v in counter.most_common()) or "none"

    out["versions"] = fmt(versions)
    out["ciphers"] = fmt(ciphers)
    out["groups"] = fmt(groups)
    if a.json:
        json.dump(out, sys.stdout)
        print()
    else:
        print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
