#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""memcached UDP conformance: the same datagrams to Debian's memcached and to Shardplane.

Usage: conformance.py SERVER_BINARY [SERVER_ARGS...]
   or: conformance.py --target HOST:PORT [WORKERS PARTITIONS]
       (an already running Shardplane, e.g. shardplane-dp with WORKERS workers and
       PARTITIONS partitions)

Starts memcached (-t 1, so its replies keep their order) on a free loopback UDP port and the
Shardplane server, sends every case of CASES to both and compares each reply datagram byte
for byte: request id, sequence number, datagram count and payload. Documented differences
(docs/memcache.md) are normalised before comparing and nowhere else:
  - the version string of VERSION and of STAT version;
  - "stats": only the names Shardplane prints must appear, in memcached's order; values and
    memcached's extra names are not compared;
  - CAS unique values: each server numbers its own versions; the cas field of VALUE lines
    is compared as "a number", cas commands use the value that server handed out, and a
    deliberately wrong one is a value neither server reaches (WRONG_CAS).
After the fixed cases come RANDOM_CASES datagrams of random commands, valid and bent
(bad numbers, bad data chunks, noreply, pipelines). A random seed (printed; replay with
SP_TEST_SEED) chooses them, the request ids and the key prefix.

Each case's replies end where the reply to a sentinel datagram sent right after it arrives.
On a server with several workers a datagram may be handed to its key's owner while a later
one is answered at once, so there the sentinel is one "get" per worker, of a key that worker
owns (partition = XXH3-64(key) mod PARTITIONS, owner = partition mod WORKERS, the default
routing table): each worker answers it after whatever it was given before.

Against such a target two documented limits (docs/memcache.md) apply, and the cases they
concern are sent to neither server (so both keep the same items), counted and printed:
  - a datagram of several commands naming keys of different workers (difference 10: a
    write to another worker's key is refused); a single get of many keys is kept;
  - a request over one Ethernet frame (UDP payload over 1472 bytes), which arrives as IP
    fragments and is refused.
"""
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import ctypes
import ctypes.util

REPLY_WAIT_S = 2.0       # longest wait for one case's replies
CASE_DATAGRAMS_MAX = 64  # bound on reply datagrams collected per case
SENTINEL = b"version\r\n"


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


SENTINEL_KEY_TRIES_MAX = 10000  # bound on the search for a key each worker owns


UNFRAGMENTED_PAYLOAD_MAX = 1500 - 20 - 8  # UDP payload of one IPv4 datagram, MTU 1500
GET_WORDS = (b"get", b"gets", b"bget", b"gat", b"gats")


class Owners:
    """Which worker of a multi-worker target owns a key (the default routing table)."""

    def __init__(self, workers, partitions):
        self.workers = workers
        self.partitions = partitions
        self.lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
        self.lib.XXH3_64bits.restype = ctypes.c_uint64
        self.lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

    def owner(self, key):
        return (self.lib.XXH3_64bits(key, len(key)) & (self.partitions - 1)) % self.workers

    def skip_reason(self, payload, prefix):
        """Why a case cannot run against this target unchanged, or None."""
        if 8 + len(payload) > UNFRAGMENTED_PAYLOAD_MAX:
            return "over one frame: IP fragments are refused"
        keys = re.findall(re.escape(prefix) + rb"[^ \r\n]*", payload)
        words = payload.split()
        single_get = payload.count(b"\n") == 1 and words and words[0] in GET_WORDS
        if len({self.owner(k) for k in keys}) > 1 and not single_get:
            return "keys of several workers in one datagram (difference 10)"
        # A multi-key get places the datagram on the receiving worker, whichever it is.
        multi_get = any(ln.split()[:1] and ln.split()[0] in GET_WORDS and
                        len(re.findall(re.escape(prefix), ln)) > 1
                        for ln in payload.split(b"\n"))
        if multi_get and not single_get:
            return "a multi-key get with other commands in one datagram (difference 10)"
        # gat on another worker's key: its owner applies the expiry a moment later.
        if single_get and words[0] in (b"gat", b"gats") and len(set(keys)) < len(keys):
            return "gat naming a key twice: remote touches apply later (difference 10)"
        return None


def worker_sentinels(owners):
    """One "get" per worker, of a key the default routing table gives that worker."""
    workers = owners.workers
    found = {}
    for i in range(SENTINEL_KEY_TRIES_MAX):
        key = b"sentinel_%d" % i
        owner = owners.owner(key)
        found.setdefault(owner, b"get " + key + b"\r\n")
        if len(found) == workers:
            return [found[w] for w in range(workers)]
    raise RuntimeError("no sentinel key for every one of %d workers" % workers)


class Target:
    def __init__(self, name, port, host="127.0.0.1", sentinels=(SENTINEL,)):
        self.name = name
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if host.startswith("127.") else "0.0.0.0", 0))
        self.sock.settimeout(REPLY_WAIT_S)
        self.cas = {}
        self.sentinels = list(sentinels)

    def exchange(self, rid, payload, count=1):
        """Sends one request datagram, then the sentinels; returns the case's replies."""
        ids = [(rid + 1 + i) & 0xFFFF for i in range(len(self.sentinels))]
        self.sock.sendto(struct.pack(">HHHH", rid, 0, count, 0) + payload, self.addr)
        for sid, sentinel in zip(ids, self.sentinels):
            self.sock.sendto(struct.pack(">HHHH", sid, 0, 1, 0) + sentinel, self.addr)
        waiting = set(ids)
        got = []
        deadline = time.monotonic() + REPLY_WAIT_S
        while time.monotonic() < deadline and len(got) <= CASE_DATAGRAMS_MAX:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            if len(d) >= 8 and struct.unpack(">H", d[:2])[0] in waiting:
                waiting.discard(struct.unpack(">H", d[:2])[0])
                if not waiting:
                    return got
                continue
            got.append(d)
        raise RuntimeError("%s: no sentinel reply after %r" % (self.name, payload[:60]))

    def ping(self):
        for _ in range(50):
            try:
                self.exchange(1, b"version\r\n")
                return
            except (RuntimeError, ConnectionRefusedError, OSError):
                time.sleep(0.1)
        raise RuntimeError(self.name + " does not answer")


VALUE_RE = re.compile(rb"^(VALUE \S+ \d+ \d+) (\d+)\r$")


def normalise(target, datagrams):
    """Applies the documented differences; records CAS values for later cas commands."""
    out = []
    for d in datagrams:
        hdr, body = d[:8], d[8:]
        lines = body.split(b"\n")
        fixed = []
        for ln in lines:
            m = VALUE_RE.match(ln)
            if m:
                key = m.group(1).split(b" ")[1]
                target.cas[key] = m.group(2)
                ln = m.group(1) + b" <cas>\r"
            if ln.startswith(b"VERSION "):
                ln = b"VERSION <v>\r"
            fixed.append(ln)
        out.append((hdr, b"\n".join(fixed)))
    return out


def stats_names(datagrams):
    text = b"".join(d[8:] for d in datagrams).decode()
    names = [ln.split(" ")[1] for ln in text.split("\r\n") if ln.startswith("STAT ")]
    return names, text.endswith("END\r\n")


def K(prefix, name):
    return prefix + name


# Debian's memcached (1.6.18) now and then answers incr/decr of a value of 2^63 or more with
# this error, at random (3 times in 8,000 tries of the same request on a fresh server): its
# check for a minus sign in numbers that large scans the item's data past its end, into
# whatever the slab holds next. memcached_misread() tells that apart from a real
# non-numeric value, in any case, fixed or random.
MC_BIG_QUIRK = b"CLIENT_ERROR cannot increment or decrement non-numeric value"


def build_cases(p):
    """Each case: (label, payload bytes) or (label, payload, options)."""
    k = lambda n: (p + n).encode()
    long_key = b"L" * 251
    key250 = b"M" * 250
    big = b"x" * 3000
    c = []
    add = lambda label, payload, **o: c.append((label, payload, o))
    add("set", b"set " + k("a") + b" 5 0 3\r\nabc\r\n")
    add("get hit", b"get " + k("a") + b"\r\n")
    add("get miss", b"get " + k("nope") + b"\r\n")
    add("get hit,miss", b"get " + k("a") + b" " + k("nope") + b"\r\n")
    add("get miss,hit", b"get " + k("nope") + b" " + k("a") + b"\r\n")
    add("set b", b"set " + k("b") + b" 6 0 3\r\nxyz\r\n")
    add("get x a y b z", b"get " + b" ".join(k(n) for n in ["x", "a", "y", "b", "z"]) + b"\r\n")
    add("get miss,miss", b"get " + k("m1") + b" " + k("m2") + b"\r\n")
    add("gets", b"gets " + k("a") + b"\r\n")
    add("gets two", b"gets " + k("a") + b" " + k("b") + b"\r\n")
    add("bget", b"bget " + k("a") + b"\r\n")
    add("get spaces", b"get   " + k("a") + b"   " + k("b") + b"  \r\n")
    add("get lf only", b"get " + k("a") + b"\n")
    add("get 30 keys", b"get " + b" ".join(k("a") if i % 3 == 0 else k("q%d" % i)
                                          for i in range(30)) + b"\r\n")
    add("get long key", b"get " + k("a") + b" " + long_key + b"\r\n")
    add("set then get long key (cull)",
        b"set " + k("c") + b" 0 0 1\r\nx\r\nget " + long_key + b"\r\n")
    add("set then get misses (absorb)", b"set " + k("c") + b" 0 0 1\r\ny\r\nget " + k("m1") +
        b" " + k("m2") + b"\r\n")
    add("noreply set then get misses", b"set " + k("c") + b" 0 0 1 noreply\r\nz\r\nget " +
        k("m1") + b" " + k("m2") + b"\r\n")
    add("get no key", b"get\r\n")
    add("bget no key", b"bget\n")
    add("get key250 miss", b"get " + key250 + b"\r\n")
    add("set key250", b"set " + key250 + b" 1 0 2\r\nhi\r\n")
    add("get key250", b"get " + key250 + b"\r\n")
    add("set long key", b"set " + long_key + b" 0 0 1\r\na\r\n")
    add("set long key noreply", b"set " + long_key + b" 0 0 1 noreply\r\na\r\n")
    add("set bad flags", b"set " + k("a") + b" x 0 1\r\na\r\n")
    add("set neg flags", b"set " + k("a") + b" -1 0 1\r\na\r\n")
    add("set flags 2^32", b"set " + k("f") + b" 4294967296 0 1\r\na\r\n")
    add("get flags 2^32", b"get " + k("f") + b"\r\n")
    add("set flags max", b"set " + k("f") + b" 4294967295 0 1\r\na\r\n")
    add("get flags max", b"get " + k("f") + b"\r\n")
    add("set flags +7", b"set " + k("f") + b" +7 0 1\r\na\r\n")
    add("get flags +7", b"get " + k("f") + b"\r\n")
    add("set bad exptime", b"set " + k("a") + b" 0 x 1\r\na\r\n")
    add("set bad length", b"set " + k("a") + b" 0 0 z\r\na\r\n")
    add("set neg length", b"set " + k("a") + b" 0 0 -1\r\na\r\n")
    add("set length junk", b"set " + k("a") + b" 0 0 1x\r\na\r\n")
    add("set bad chunk", b"set " + k("a") + b" 0 0 1\r\nab\r\n")
    add("set bad chunk noreply", b"set " + k("a") + b" 0 0 1 noreply\r\nab\r\n")
    add("set junk 6th token", b"set " + k("j") + b" 0 0 1 junk\r\nx\r\n")
    add("set too many tokens", b"set " + k("a") + b" 0 0 1 junk extra\r\nx\r\n")
    add("set too few tokens", b"set " + k("a") + b" 0 0\r\n")
    add("set noreply", b"set " + k("n") + b" 0 0 2 noreply\r\n10\r\n")
    add("get after noreply", b"get " + k("n") + b"\r\n")
    add("set empty value", b"set " + k("e") + b" 0 0 0\r\n\r\n")
    add("get empty value", b"get " + k("e") + b"\r\n")
    add("set binary value", b"set " + k("bin") + b" 0 0 4\r\n\x00\r\n\xff\r\n")
    add("get binary value", b"get " + k("bin") + b"\r\n")
    add("set big", b"set " + k("big") + b" 9 0 3000\r\n" + big + b"\r\n")
    add("get big (3 datagrams)", b"get " + k("big") + b"\r\n")
    add("get big twice", b"get " + k("big") + b" " + k("big") + b"\r\n")
    add("add existing", b"add " + k("a") + b" 0 0 1\r\nq\r\n")
    add("add new", b"add " + k("add1") + b" 3 0 1\r\nq\r\n")
    add("replace missing", b"replace " + k("nope") + b" 0 0 1\r\nq\r\n")
    add("replace existing", b"replace " + k("add1") + b" 4 0 2\r\nrr\r\n")
    add("append", b"append " + k("add1") + b" 99 0 3\r\nAPP\r\n")
    add("prepend", b"prepend " + k("add1") + b" 98 0 3\r\nPRE\r\n")
    add("get after append/prepend (flags kept)", b"get " + k("add1") + b"\r\n")
    add("append missing", b"append " + k("nope") + b" 0 0 1\r\nq\r\n")
    add("prepend missing", b"prepend " + k("nope") + b" 0 0 1\r\nq\r\n")
    add("gets for cas", b"gets " + k("add1") + b"\r\n")
    add("cas good", b"cas " + k("add1") + b" 7 0 2 {cas:add1}\r\nok\r\n")
    add("cas stale", b"cas " + k("add1") + b" 7 0 2 {cas:add1}\r\nno\r\n")
    add("cas missing", b"cas " + k("nope") + b" 0 0 1 1\r\nq\r\n")
    add("cas zero", b"cas " + k("add1") + b" 0 0 1 0\r\nq\r\n")
    add("cas bad unique", b"cas " + k("add1") + b" 0 0 1 abc\r\nq\r\n")
    add("cas noreply as unique", b"cas " + k("add1") + b" 0 0 1 noreply\r\nq\r\n")
    add("cas too few", b"cas " + k("add1") + b" 0 0 1\r\nq\r\n")
    add("get after cas", b"get " + k("add1") + b"\r\n")
    add("delete", b"delete " + k("add1") + b"\r\n")
    add("delete missing", b"delete " + k("add1") + b"\r\n")
    add("delete 0", b"delete " + k("a") + b" 0\r\n")
    add("delete 5", b"delete " + k("a") + b" 5\r\n")
    add("delete 0 noreply", b"delete " + k("b") + b" 0 noreply\r\n")
    add("delete 5 noreply", b"delete " + k("b") + b" 5 noreply\r\n")
    add("delete x y z", b"delete " + k("b") + b" x y z\r\n")
    add("delete long key", b"delete " + long_key + b"\r\n")
    add("delete no key", b"delete\r\n")
    add("set counter", b"set " + k("n") + b" 0 0 2\r\n10\r\n")
    add("incr", b"incr " + k("n") + b" 5\r\n")
    add("incr grows", b"incr " + k("n") + b" 100\r\n")
    add("get grown", b"get " + k("n") + b"\r\n")
    add("decr", b"decr " + k("n") + b" 1\r\n")
    add("decr below zero", b"decr " + k("n") + b" 1000\r\n")
    add("get padded", b"get " + k("n") + b"\r\n")
    add("incr after padding", b"incr " + k("n") + b" 7\r\n")
    add("incr wraps", b"set " + k("w") + b" 0 0 20\r\n18446744073709551615\r\nincr " + k("w") +
        b" 2\r\n")
    add("incr bad delta", b"incr " + k("n") + b" abc\r\n")
    add("incr negative delta", b"incr " + k("n") + b" -1\r\n")
    add("incr missing", b"incr " + k("nope") + b" 1\r\n")
    add("decr missing", b"decr " + k("nope") + b" 1\r\n")
    add("incr non-numeric", b"incr " + k("big") + b" 1\r\n")
    add("incr noreply", b"incr " + k("n") + b" 1 noreply\r\n")
    add("incr too few", b"incr " + k("n") + b"\r\n")
    add("incr long key", b"incr " + long_key + b" 1\r\n")
    for name, val in [("empty", b""), ("lead", b" 5"), ("trail", b"5 "), ("neg", b"-5"),
                      ("d20", b"12345678901234567890"), ("d21", b"123456789012345678901"),
                      ("zero", b"0"), ("plus", b"+5"), ("tab", b"7\t"), ("nl", b"8\r\n")]:
        add("incr on %s value" % name, b"set " + k("iv" + name) + b" 0 0 %d\r\n" % len(val) +
            val + b"\r\nincr " + k("iv" + name) + b" 1\r\nget " + k("iv" + name) + b"\r\n")
        add("decr on %s value" % name, b"decr " + k("iv" + name) + b" 3\r\nget " +
            k("iv" + name) + b"\r\n")
    add("incr 0", b"set " + k("z") + b" 0 0 1\r\n9\r\nincr " + k("z") + b" 0\r\n")
    add("set 24 tokens", b"set " + k("a") + b" 0 0 1" + b" x" * 19 + b"\r\nq\r\n")
    add("delete key named noreply", b"delete noreply\r\n")
    add("verbosity 1 2", b"verbosity 1 2\r\n")
    add("flush_all 0 noreply", b"flush_all 0 noreply\r\n")
    add("flush_all 5 junk", b"flush_all 5 junk\r\nflush_all 0\r\n")
    add("touch 0 never", b"set " + k("t0") + b" 0 1 1\r\nq\r\ntouch " + k("t0") +
        b" 0\r\n")
    add("stats reset", b"stats reset\r\n")
    add("touch", b"touch " + k("n") + b" 100\r\n")
    add("touch missing", b"touch " + k("nope") + b" 100\r\n")
    add("touch bad exptime", b"touch " + k("n") + b" x\r\n")
    add("touch noreply", b"touch " + k("n") + b" 100 noreply\r\n")
    add("gat", b"gat 100 " + k("n") + b" " + k("nope") + b"\r\n")
    add("gats", b"gats 100 " + k("n") + b"\r\n")
    add("gat no key", b"gat 100\r\n")
    add("gat bad exptime", b"gat x " + k("n") + b"\r\n")
    add("gat expire now", b"gat -1 " + k("n") + b"\r\n")
    add("get after gat -1", b"get " + k("n") + b"\r\n")
    add("set exptime -1", b"set " + k("neg") + b" 0 -1 1\r\nq\r\nget " + k("neg") + b"\r\n")
    add("set exptime absolute past", b"set " + k("past") + b" 0 1000000000 1\r\nq\r\nget " +
        k("past") + b"\r\n")
    add("set exptime absolute future", b"set " + k("fut") + b" 0 {now+100} 1\r\nq\r\nget " +
        k("fut") + b"\r\n")
    add("set exptime 2^32+100", b"set " + k("wrap") + b" 0 4294967396 1\r\nq\r\nget " +
        k("wrap") + b"\r\n")
    add("set exptime 1", b"set " + k("soon") + b" 0 1 1\r\nq\r\n")
    add("get expired after sleep", b"get " + k("soon") + b"\r\n", sleep=2.2)
    add("version", b"version\r\n")
    add("version extra", b"version now\r\n")
    add("verbosity", b"verbosity 1\r\n")
    add("verbosity noreply", b"verbosity 1 noreply\r\n")
    add("verbosity bad", b"verbosity x\r\n")
    add("verbosity none", b"verbosity\r\n")
    add("verbosity only noreply", b"verbosity noreply\r\n")
    add("stats unknown", b"stats nosuchthing\r\n")
    add("shutdown", b"shutdown\r\n")
    add("unknown", b"bogus\r\n")
    add("unknown s-word", b"sett a 0 0 1\r\n")
    add("upper case", b"GET " + k("a") + b"\r\n")
    add("empty line", b"\r\n")
    add("one char", b"x\r\n")
    add("bare lf", b"\n")
    add("cr cr lf", b"get " + k("a") + b"\r\r\n")
    add("nul in line", b"get " + k("a") + b"\x00junk\r\n")
    add("tab in key", b"set " + k("t\tab") + b" 0 0 1\r\nq\r\nget " + k("t\tab") + b"\r\n")
    add("leading space", b"  get " + k("a") + b"\r\n")
    add("incomplete line ignored", b"get " + k("a"))
    add("two commands", b"get " + k("a") + b"\r\nget " + k("b") + b"\r\n")
    add("pipeline 25 deletes then get",
        b"".join(b"delete " + k("d%d" % i) + b"\r\n" for i in range(25)) + b"get " +
        k("m1") + b" " + k("m2") + b"\r\n")
    add("pipeline 20 deletes then get",
        b"".join(b"delete " + k("d%d" % i) + b"\r\n" for i in range(20)) + b"get " +
        k("m1") + b" " + k("m2") + b"\r\n")
    add("pipeline 21 deletes then get",
        b"".join(b"delete " + k("d%d" % i) + b"\r\n" for i in range(21)) + b"get " +
        k("m1") + b" " + k("m2") + b"\r\n")
    add("pipeline 45 noreply then get",
        b"".join(b"delete " + k("d%d" % i) + b" noreply\r\n" for i in range(45)) + b"get " +
        k("m1") + b" " + k("m2") + b"\r\n")
    add("http closes", b"delete " + k("zz") + b"\r\nGET / HTTP/1.1\r\ndelete " + k("zz") +
        b"\r\n")
    add("multi-datagram request dropped", b"version\r\n", count=2)
    add("flush_all bad", b"flush_all x\r\n")
    add("flush_all too many", b"flush_all 1 2 3\r\n")
    add("flush_all delayed", b"flush_all 100\r\n")
    add("flush_all noreply", b"flush_all noreply\r\n")
    add("flush_all 0", b"flush_all 0\r\n")
    add("get after flush", b"get " + k("b") + b" " + k("big") + b"\r\n")
    add("set after flush", b"set " + k("a") + b" 1 0 1\r\nq\r\nget " + k("a") + b"\r\n")
    add("flush_all -1", b"flush_all -1\r\nget " + k("a") + b"\r\n")
    add("stats", b"stats\r\n", stats=True)
    return c


RANDOM_CASES = 300        # randomized datagrams after the fixed cases
RANDOM_CMDS_MAX = 4       # commands per randomized datagram
# A cas unique neither server hands out during a run, for "cas with a wrong version". Each
# server numbers its own versions (Shardplane per partition store, from 1), so a small
# literal such as 1 can be the item's real version on one server and not on the other.
WRONG_CAS = b"9223372036854775807"


def random_command(rnd, p):
    """One command from memcached's grammar, sometimes bent out of shape."""
    key = (p + rnd.choice(["r1", "r2", "r3", "r4", "n1", "n2"])).encode()
    keys = b" ".join((p + rnd.choice(["r1", "r2", "r3", "n1", "zz"])).encode()
                     for _ in range(rnd.randint(1, 4)))
    value = rnd.choice([b"", b"0", b"7", b"42", b"18446744073709551615", b"abc", b" 9",
                        b"x" * rnd.randint(1, 300), b"\r\n7", b"a\r\nb"])
    flags = rnd.choice([b"0", b"1", b"4294967295", b"4294967296", b"-1", b"x", b"+3"])
    exptime = rnd.choice([b"0", b"0", b"1000", b"-1", b"bad", b"2592000"])
    noreply = rnd.choice([b"", b"", b"", b" noreply"])
    word = rnd.choice(["get", "gets", "gat", "gats", "set", "add", "replace", "append",
                       "prepend", "cas", "delete", "incr", "decr", "touch", "verbosity",
                       "flush_all", "bogus"])
    if word in ("get", "gets"):
        return word.encode() + b" " + keys + b"\r\n"
    if word in ("gat", "gats"):
        return word.encode() + b" " + exptime + b" " + keys + b"\r\n"
    if word in ("set", "add", "replace", "append", "prepend", "cas"):
        length = str(len(value)).encode()
        if rnd.random() < 0.1:
            length = rnd.choice([b"-1", b"x"])
        cas = b""
        if word == "cas":
            cas = b" " + rnd.choice([b"{cas:%s}" % key[len(p):], WRONG_CAS, b"0", b"x"])
        data = value + rnd.choice([b"\r\n"] * 9 + [b"!\r\n"])
        return b"%s %s %s %s %s%s%s\r\n%s" % (word.encode(), key, flags, exptime, length, cas,
                                              noreply, data)
    if word == "delete":
        return b"delete " + key + rnd.choice([b"", b" 0", b" 5"]) + noreply + b"\r\n"
    if word in ("incr", "decr"):
        delta = rnd.choice([b"1", b"0", b"100", b"18446744073709551615", b"-1", b"z"])
        return word.encode() + b" " + key + b" " + delta + noreply + b"\r\n"
    if word == "touch":
        return b"touch " + key + b" " + exptime + noreply + b"\r\n"
    if word == "verbosity":
        return b"verbosity " + rnd.choice([b"1", b"x"]) + noreply + b"\r\n"
    if word == "flush_all":
        return b"flush_all" + rnd.choice([b"", b" 0", b" -1", b" x"]) + noreply + b"\r\n"
    return b"bogus " + key + b"\r\n"


def random_cases(rnd, prefix):
    out = []
    for i in range(RANDOM_CASES):
        payload = b"".join(random_command(rnd, prefix)
                           for _ in range(rnd.randint(1, RANDOM_CMDS_MAX)))
        out.append(("random %d" % i, payload, {}))
    return out


def substitute(payload, target, now):
    def cas_for(m):
        key = m.group(1)
        return target.cas.get(target.prefix + key, b"0")
    payload = re.sub(rb"\{cas:([^}]+)\}", cas_for, payload)
    return payload.replace(b"{now+100}", str(now + 100).encode())


def memcached_misread(mc, next_rid, payload, replies):
    """The keys of payload's incr/decr commands that memcached answered MC_BIG_QUIRK for
    although it holds a number of 2^63 or more under them (read back from memcached): its
    random misreading, not a difference. A key holding a real non-numeric value is not
    listed, so a Shardplane that computed on it still fails the case."""
    if not any(MC_BIG_QUIRK in d for d in replies):
        return []
    keys = sorted({ln.split()[1] for ln in payload.split(b"\r\n")
                   if ln.startswith((b"incr ", b"decr ")) and len(ln.split()) >= 2})
    misread = []
    for key in keys:
        got = b"".join(d[8:] for d in mc.exchange(next_rid(), b"get " + key + b"\r\n"))
        m = re.match(rb"VALUE \S+ \d+ \d+\r\n(\d+)\r\nEND\r\n$", got)
        if m and int(m.group(1)) >= 1 << 63:
            misread.append(key)
    return misread


def main():
    seed = int(os.environ.get("SP_TEST_SEED", random.randrange(1, 1 << 31)))
    print("conformance: seed %d (replay with SP_TEST_SEED=%d)" % (seed, seed), flush=True)
    rnd = random.Random(seed)
    procs = []
    memcached = shutil.which("memcached")
    if memcached is None:
        print("memcached not installed: skipping")
        return 77
    mport = free_udp_port()
    procs.append(subprocess.Popen([memcached, "-U", str(mport), "-p", "0", "-l", "127.0.0.1",
                                   "-t", "1", "-u", "root"], stdout=subprocess.DEVNULL))
    try:
        host, sentinels, owners = "127.0.0.1", (SENTINEL,), None
        if sys.argv[1] == "--target":
            host, port = sys.argv[2].rsplit(":", 1)
            sp_port = int(port)
            if len(sys.argv) >= 5:
                owners = Owners(int(sys.argv[3]), int(sys.argv[4]))
                sentinels = worker_sentinels(owners)
        else:
            sp = subprocess.Popen(sys.argv[1:] + ["--port", "0", "--max-seconds", "300"],
                                  stdout=subprocess.PIPE, text=True)
            procs.append(sp)
            line = sp.stdout.readline().split()
            if len(line) != 2 or line[0] != "port":
                raise RuntimeError("server did not print its port: %r" % line)
            sp_port = int(line[1])
        mc = Target("memcached", mport)
        sh = Target("shardplane", sp_port, host, sentinels)
        mc.ping()
        sh.ping()
        prefix = "c%d_" % rnd.randrange(1 << 30)
        mc.prefix = sh.prefix = prefix.encode()
        failures = 0
        skipped = 0
        # quit goes last: memcached keeps its close-after-write flag on the shared UDP
        # connection afterwards, and from then on stops reading a datagram after any get
        # (docs/memcache.md, differences).
        cases = build_cases(prefix) + random_cases(rnd, prefix) + [
            ("quit flushes and stops", b"delete " + (prefix + "zz").encode() +
             b"\r\nquit\r\ndelete " + (prefix + "zz").encode() + b"\r\n", {})]
        rid = rnd.randrange(2, 60000)
        step = 1 + max(len(mc.sentinels), len(sh.sentinels))

        def next_rid():
            nonlocal rid
            rid = (rid + step) & 0xFFFF
            return rid

        for label, payload, opts in cases:
            if opts.get("sleep"):
                time.sleep(opts["sleep"])
            now = int(time.time())
            why = owners.skip_reason(payload, mc.prefix) if owners is not None else None
            if why is not None:
                skipped += 1
                print("skip %s: %s" % (label, why))
                continue
            next_rid()
            replies = []
            for t in (mc, sh):
                got = t.exchange(rid, substitute(payload, t, now), opts.get("count", 1))
                replies.append(got)
            if opts.get("stats"):
                mnames, mend = stats_names(replies[0])
                snames, send = stats_names(replies[1])
                order = [n for n in mnames if n in snames]
                ok = send and mend and order == snames and len(snames) >= 25
                if not ok:
                    failures += 1
                    print("FAIL %s: names %s not in memcached's order or missing END" %
                          (label, snames))
                continue
            a = normalise(mc, replies[0])
            b = normalise(sh, replies[1])
            misread = memcached_misread(mc, next_rid, payload, replies[0]) if a != b else []
            if misread:
                # The servers now disagree on those keys: both forget them.
                for key in misread:
                    for t in (mc, sh):
                        t.exchange(next_rid(), b"delete " + key + b"\r\n")
                skipped += 1
                print("skip %s: memcached misread %s as non-numeric (MC_BIG_QUIRK)" %
                      (label, b", ".join(misread).decode()))
                continue
            if a != b:
                failures += 1
                print("FAIL %s\n  request:    %r\n  memcached:  %r\n  shardplane: %r" %
                      (label, payload[:120], replies[0][:6], replies[1][:6]))
            else:
                print("ok   %s (%d datagrams)" % (label, len(a)))
        print("conformance: %d cases, %d failures, %d skipped" %
              (len(cases), failures, skipped))
        if skipped * 3 > len(cases) * 2:
            print("FAIL: more than two thirds of the cases were skipped")
            return 1
        return 1 if failures else 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
