#!/usr/bin/env python3
"""Propagation time of catalog changes to many Waymark proxies (used by proxy-compare.sh).

Given a running registry and N waymark-proxy processes that each have an upstream to
SERVICE (JSON logs with `waymark_proxy::discovery=debug`, admin listeners), it:

1. registers two plain instances (no lease) of SERVICE, ids `<service>-1` and
   `<service>-2`, and waits until every proxy routes to both;
2. CHANGES times: deregisters `<service>-2` (gRPC Catalog.Deregister, which returns the
   commit index once the entry is committed and applied), then waits until every proxy
   has applied an endpoint set at an index >= that commit index without it; checks each
   proxy's `/endpoints` says so too; re-registers it and waits until every proxy routes
   to it again; sleeps GAP seconds (plus up to GAP of random jitter) between changes.

When a proxy applied a change is taken from its own log line `endpoints updated`
(`index`, `endpoints` = the new set's size; logged right after the new set is
installed, with the proxy's wall-clock timestamp): nothing polls the proxies while a
change propagates, so the measurement does not load them. `--method poll` polls every
proxy's `/endpoints` instead (every --poll-interval seconds, concurrently), for a
proxy build without that log line; its polling starts once the write's response has
arrived, so its times are late by up to that and a poll interval (and "first proxy ->
last proxy" is then no strict lower bound).

No log line or response says when the entry committed, but the commit comes after the
request was sent and before the first proxy applied the change (the leader answers and
notifies its watchers only after committing and applying it), so "request sent -> last
proxy" bounds "commit -> last proxy" from above and "first proxy -> last proxy" from
below; "response received -> last proxy" is given too (the response can arrive after
some proxies already applied the change).

Prints a JSON summary to stdout (and writes it to --json-out); writes a markdown
fragment to --md-out. Exit status 0 on success, 1 on an error or if a change did not
reach every proxy within --timeout.

Protobuf messages are encoded by hand (a few string/varint fields), so only `grpcio`
is needed, no generated code.
"""

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
import urllib.request
from datetime import datetime

import grpc

# ---- minimal protobuf encoding ------------------------------------------------


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_str(num, s):
    b = s.encode()
    return _varint(num << 3 | 2) + _varint(len(b)) + b


def _field_varint(num, v):
    return _varint(num << 3 | 0) + _varint(v)


def _field_msg(num, b):
    return _varint(num << 3 | 2) + _varint(len(b)) + b


def _decode(buf):
    """Top-level fields of a protobuf message: {field number: last value}."""
    fields = {}
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v = bytes(buf[i : i + n])
            i += n
        elif wt == 1:
            v = bytes(buf[i : i + 8])
            i += 8
        elif wt == 5:
            v = bytes(buf[i : i + 4])
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        fields[num] = v
    return fields


def _read_varint(buf, i):
    shift = 0
    n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7


def register_request(service, iid, address, port):
    # RegisterRequest: service=1 id=2 address=3 port=4 weights=7 {passing=1 warning=2}
    weights = _field_varint(1, 1) + _field_varint(2, 1)
    return (
        _field_str(1, service)
        + _field_str(2, iid)
        + _field_str(3, address)
        + _field_varint(4, port)
        + _field_msg(7, weights)
    )


def deregister_request(service, iid):
    return _field_str(1, service) + _field_str(2, iid)


class Catalog:
    def __init__(self, addr):
        self.channel = grpc.insecure_channel(addr)
        ident = lambda b: b  # noqa: E731
        self._register = self.channel.unary_unary(
            "/waymark.v1.Catalog/Register", request_serializer=ident, response_deserializer=ident
        )
        self._deregister = self.channel.unary_unary(
            "/waymark.v1.Catalog/Deregister", request_serializer=ident, response_deserializer=ident
        )

    def register(self, service, iid, address, port):
        """(index, sent, acked) of a Register."""
        req = register_request(service, iid, address, port)
        sent = time.time()
        resp = self._register(req, timeout=10)
        acked = time.time()
        return _decode(resp).get(2, 0), sent, acked

    def deregister(self, service, iid):
        """(index, sent, acked, removed) of a Deregister."""
        req = deregister_request(service, iid)
        sent = time.time()
        resp = self._deregister(req, timeout=10)
        acked = time.time()
        f = _decode(resp)
        return f.get(2, 0), sent, acked, bool(f.get(1, 0))


# ---- observing the proxies ------------------------------------------------------


def parse_ts(s):
    # "2026-12-02T01:43:12.123456Z" (tracing-subscriber's RFC 3339, UTC)
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    return datetime.fromisoformat(s).timestamp()


class LogFollower:
    """Reads the `endpoints updated` lines appended to one proxy's JSON log."""

    def __init__(self, path, upstream):
        self.path = path
        self.upstream = upstream
        self.offset = 0
        self.partial = b""
        self.events = []  # (timestamp, index, endpoints)

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        if not data:
            return
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if b"endpoints updated" not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            fields = rec.get("fields", {})
            if fields.get("message") != "endpoints updated":
                continue
            if str(fields.get("upstream")) != self.upstream:
                continue
            self.events.append(
                (parse_ts(rec["timestamp"]), int(fields["index"]), int(fields["endpoints"]))
            )

    def first(self, min_index, count):
        """Time of the first applied set at index >= min_index with `count` endpoints."""
        for ts, idx, n in self.events:
            if idx >= min_index and n == count:
                return ts
        return None


def get_endpoints(port, upstream, timeout=2.0):
    """(index, [endpoint ids]) of `upstream` from a proxy's /endpoints."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/endpoints", timeout=timeout) as r:
        doc = json.load(r)
    for u in doc.get("upstreams", []):
        if u.get("service") == upstream:
            return int(u.get("index", 0)), [e.get("id") for e in u.get("endpoints", [])]
    raise RuntimeError(f"proxy on admin port {port} has no upstream {upstream}")


class Poller:
    """Polls /endpoints of every proxy concurrently over kept-alive connections."""

    def __init__(self, ports, upstream, interval):
        self.ports = ports
        self.upstream = upstream
        self.interval = interval

    async def _get(self, conn, port):
        reader, writer = conn
        writer.write(b"GET /endpoints HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if not m:
            raise RuntimeError(f"admin port {port}: no content-length")
        body = await reader.readexactly(int(m.group(1)))
        doc = json.loads(body)
        for u in doc.get("upstreams", []):
            if u.get("service") == self.upstream:
                return int(u.get("index", 0)), [e.get("id") for e in u.get("endpoints", [])]
        raise RuntimeError(f"admin port {port}: no upstream {self.upstream}")

    async def _watch_one(self, port, pred, deadline):
        conn = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.time() < deadline:
                idx, ids = await self._get(conn, port)
                now = time.time()
                if pred(idx, ids):
                    return now
                await asyncio.sleep(self.interval)
            return None
        finally:
            conn[1].close()

    def wait_all(self, pred, timeout):
        deadline = time.time() + timeout

        async def run():
            return await asyncio.gather(*(self._watch_one(p, pred, deadline) for p in self.ports))

        return asyncio.run(run())


# ---- statistics -----------------------------------------------------------------


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))  # nearest rank
    return v[k]


def summary_ms(values):
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 2),
        "p99_ms": round(pct(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else float("nan"),
        "min_ms": round(min(values) * 1000, 2) if values else float("nan"),
    }


# ---- main -----------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True, help="registry API address for the writes (host:port)")
    ap.add_argument("--service", default="prop")
    ap.add_argument("--admin-ports", required=True, help="comma-separated admin ports of the proxies")
    ap.add_argument("--logs", default="", help="comma-separated JSON log files, same order as --admin-ports")
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--method", choices=["log", "poll"], default="log")
    ap.add_argument("--poll-interval", type=float, default=0.005)
    ap.add_argument("--json-out")
    ap.add_argument("--md-out")
    args = ap.parse_args()

    ports = [int(p) for p in args.admin_ports.split(",") if p]
    logs = [p for p in args.logs.split(",") if p]
    if args.method == "log" and len(logs) != len(ports):
        sys.exit("proxy_propagation.py: --method log needs one log file per admin port")
    svc = args.service
    gone, stay = f"{svc}-2", f"{svc}-1"
    cat = Catalog(args.registry)
    followers = [LogFollower(p, svc) for p in logs] if args.method == "log" else []
    poller = Poller(ports, svc, args.poll_interval)

    def wait_all(min_index, count, ids_pred):
        """Per proxy: when it applied a set at >= min_index with `count` endpoints."""
        if args.method == "poll":
            times = poller.wait_all(lambda idx, ids: idx >= min_index and ids_pred(ids), args.timeout)
        else:
            deadline = time.time() + args.timeout
            times = [None] * len(followers)
            while True:
                for i, f in enumerate(followers):
                    if times[i] is None:
                        f.poll()
                        times[i] = f.first(min_index, count)
                if all(t is not None for t in times) or time.time() > deadline:
                    break
                time.sleep(0.005)
        missing = [ports[i] for i, t in enumerate(times) if t is None]
        if missing:
            raise SystemExit(
                f"proxy_propagation.py: {len(missing)} proxies (admin ports {missing[:10]}...) did not "
                f"apply index >= {min_index} with {count} endpoints within {args.timeout}s"
            )
        # Cross-check with what each proxy serves now (it can only have moved on to a
        # later set, and nothing else changes the service meanwhile).
        bad = []
        for p in ports:
            idx, ids = get_endpoints(p, svc)
            if idx < min_index or not ids_pred(ids):
                bad.append((p, idx, ids))
        if bad:
            raise SystemExit(f"proxy_propagation.py: /endpoints disagrees after the change: {bad[:5]}")
        return times

    # Setup: both instances, every proxy routing to both.
    for i, iid in enumerate((stay, gone), start=1):
        idx, _, _ = cat.register(svc, iid, "127.0.0.1", i)
    wait_all(idx, 2, lambda ids: sorted(ids) == sorted([stay, gone]))

    rounds = []
    for n in range(args.changes):
        idx, sent, acked, removed = cat.deregister(svc, gone)
        if not removed:
            raise SystemExit(f"proxy_propagation.py: deregister of {gone} removed nothing (change {n})")
        times = wait_all(idx, 1, lambda ids: ids == [stay])
        d = {"index": idx, "sent": sent, "acked": acked, "times": times}
        time.sleep(args.gap * (1 + random.random()))
        idx2, sent2, acked2 = cat.register(svc, gone, "127.0.0.1", 2)
        times2 = wait_all(idx2, 2, lambda ids: sorted(ids) == sorted([stay, gone]))
        r = {"index": idx2, "sent": sent2, "acked": acked2, "times": times2}
        rounds.append((d, r))
        time.sleep(args.gap * (1 + random.random()))

    def stats(kind):
        sel = [d if kind == "deregister" else r for d, r in rounds]
        return {
            # The commit happens after the request was sent and before the first proxy
            # applied it, so these two bound commit -> last proxy from above and below.
            "sent_to_last": summary_ms([max(x["times"]) - x["sent"] for x in sel]),
            "first_to_last": summary_ms([max(x["times"]) - min(x["times"]) for x in sel]),
            "ack_to_last": summary_ms([max(x["times"]) - x["acked"] for x in sel]),
            "sent_to_each": summary_ms([t - x["sent"] for x in sel for t in x["times"]]),
            "first_to_each": summary_ms([t - min(x["times"]) for x in sel for t in x["times"]]),
            "sent_to_first": summary_ms([min(x["times"]) - x["sent"] for x in sel]),
            "write_rpc": summary_ms([x["acked"] - x["sent"] for x in sel]),
        }

    out = {
        "proxies": len(ports),
        "changes": len(rounds),
        "method": args.method,
        "deregister": stats("deregister"),
        "register": stats("register"),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        # the summary and the raw per-change data (indexes, times, per-proxy times)
        with open(args.json_out, "w") as f:
            json.dump({"summary": out, "changes": [{"deregister": d, "register": r} for d, r in rounds]}, f)
            f.write("\n")
    if args.md_out:
        rows = []
        for kind, label in (("deregister", "deregistration"), ("register", "re-registration")):
            s = out[kind]
            for key, what in (
                ("sent_to_last", f"{label}: request sent → last of {len(ports)} proxies (upper bound)"),
                ("first_to_last", f"{label}: first proxy → last proxy (lower bound)"),
                ("ack_to_last", f"{label}: response received → last proxy"),
                ("sent_to_each", f"{label}: request sent → each proxy (all samples)"),
                ("first_to_each", f"{label}: first proxy → each proxy (all samples)"),
                ("sent_to_first", f"{label}: request sent → first proxy"),
                ("write_rpc", f"{label}: the write RPC (request sent → response received)"),
            ):
                v = s[key]
                rows.append(f"| {what} | {v['n']} | {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} | {v['min_ms']} |")
        with open(args.md_out, "w") as f:
            f.write("| measurement | samples | p50 ms | p99 ms | max ms | min ms |\n")
            f.write("|---|---|---|---|---|---|\n")
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
