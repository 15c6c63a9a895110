"""SOCKS5 Bytestreams proxy (XEP-0065) on proxy.localhost: slixmpp's xep_0065
plugin discovers it, both parties connect, the requester activates and sends
10 MB that the target receives exactly; then the proxy's refusals (unknown
stream, hostile SOCKS5 input) and its configuration errors."""

import asyncio
import hashlib
import itertools
import os
import socket
import time
import unittest
import uuid

from slixmpp.exceptions import IqError

import harness
from harness import DOMAIN, LOOPBACK, STEP_TIMEOUT, ServerTestCase, free_port

PROXY = f"proxy.{DOMAIN}"
NS_BYTESTREAMS = "http://jabber.org/protocol/bytestreams"
FILE_SIZE = 10 * 1024 * 1024
RATE = 4 * 1024 * 1024   # bytes/s per connection, configured below
BURST = 1024 * 1024
TRANSFER_TIMEOUT = 60.0


class ProxyServer(harness.Server):
    """parleyd with the proxy65 section: proxy.localhost, SOCKS5 on a free
    loopback port, 4 MiB/s per connection."""

    def write_config(self):
        if not self.ports:
            self.ports = {mode: free_port() for mode in self.LISTENER_MODES}
            self.ports["proxy65"] = free_port()
        super().write_config()

    def config(self):
        config = super().config()
        config["proxy65"] = {"address": LOOPBACK, "port": self.ports["proxy65"],
                             "rate": RATE, "burst": BURST, "activation_timeout": 30}
        return config


class Socks5TestCase(ServerTestCase):
    def setUp(self):
        self.server = ProxyServer()
        self.addCleanup(self._stop_server)
        self.server.start()

    async def pair(self):
        """alice (requester) and bob (target, accepts every bytestream), logged in."""
        self.register("alice", "bob")
        plugins = ("xep_0030", "xep_0065")
        alice = await self.logged_in("alice", plugins=plugins)
        bob = await self.logged_in("bob", plugins=plugins)
        bob["xep_0065"].auto_accept = True
        return alice, bob


class Transfer(Socks5TestCase):
    async def test_ten_megabytes_through_the_proxy(self):
        alice, bob = await self.pair()

        proxies = await alice["xep_0065"].discover_proxies(timeout=STEP_TIMEOUT)
        self.assertEqual({str(jid) for jid in proxies}, {PROXY})
        self.assertEqual(proxies[next(iter(proxies))], (LOOPBACK, str(self.server.port("proxy65"))))

        received = bytearray()
        finished = asyncio.get_event_loop().create_future()
        bob.add_event_handler("socks5_data", received.extend)
        bob.add_event_handler(
            "socks5_closed", lambda _exc: finished.done() or finished.set_result(len(received)))

        payload = os.urandom(FILE_SIZE)
        sid = uuid.uuid4().hex
        stream = await alice["xep_0065"].handshake(bob.boundjid, sid=sid, timeout=STEP_TIMEOUT)
        self.assertIsNotNone(stream, "the requester could not activate the bytestream")

        started = time.monotonic()
        chunk = 64 * 1024
        for offset in range(0, len(payload), chunk):
            await stream.write(payload[offset:offset + chunk])
        # Half-close: the proxy must pass the end on after the last byte.
        stream.transport.write_eof()
        total = await asyncio.wait_for(finished, TRANSFER_TIMEOUT)
        elapsed = time.monotonic() - started

        self.assertEqual(total, FILE_SIZE)
        self.assertEqual(hashlib.sha256(received).hexdigest(), hashlib.sha256(payload).hexdigest())
        # The relay is held to the configured rate: what exceeds the burst
        # takes its time (with a margin for timer granularity).
        self.assertGreater(elapsed, 0.9 * (FILE_SIZE - BURST) / RATE)
        ended = self.server.wait_for_log("relay ended (both sides finished)")
        self.assertIn(f" {FILE_SIZE} ", ended + " ")


class Activation(Socks5TestCase):
    async def test_unknown_sid_is_item_not_found(self):
        alice, bob = await self.pair()
        with self.assertRaises(IqError) as caught:
            await alice["xep_0065"].activate(PROXY, "no-such-stream", bob.boundjid, timeout=STEP_TIMEOUT)
        self.assertEqual(caught.exception.condition, "item-not-found")

    async def test_one_party_connected_is_not_allowed(self):
        alice, bob = await self.pair()
        sid = "half-" + uuid.uuid4().hex
        digest = hashlib.sha1((sid + str(alice.boundjid) + str(bob.boundjid)).encode()).hexdigest()
        with socks5_connect(self.server.port("proxy65"), digest):
            with self.assertRaises(IqError) as caught:
                await alice["xep_0065"].activate(PROXY, sid, bob.boundjid, timeout=STEP_TIMEOUT)
            self.assertEqual(caught.exception.condition, "not-allowed")


class Shutdown(Socks5TestCase):
    async def test_sigterm_closes_an_active_relay_and_a_waiting_connection(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=("xep_0030", "xep_0065"))
        sid = "bye-" + uuid.uuid4().hex
        target_jid = f"bob@{DOMAIN}/phone"
        digest = hashlib.sha1((sid + str(alice.boundjid) + target_jid).encode()).hexdigest()
        target = socks5_connect(self.server.port("proxy65"), digest)
        requester = socks5_connect(self.server.port("proxy65"), digest)
        self.addCleanup(target.close)
        self.addCleanup(requester.close)
        await alice["xep_0065"].activate(PROXY, sid, target_jid, timeout=STEP_TIMEOUT)
        requester.sendall(b"ping")
        self.assertEqual(recv_exactly(target, 4), b"ping")
        target.sendall(b"pong")
        self.assertEqual(recv_exactly(requester, 4), b"pong")
        waiting = socks5_connect(self.server.port("proxy65"), hashlib.sha1(b"never activated").hexdigest())
        self.addCleanup(waiting.close)

        await alice.close()
        self.assertEqual(self.server.stop(), 0)
        for sock in (target, requester, waiting):
            self.assertEqual(read_until_closed(sock), b"")


class Discovery(Socks5TestCase):
    async def test_disco_info_and_host_items(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=("xep_0030",))
        info = await alice["xep_0030"].get_info(PROXY, timeout=STEP_TIMEOUT)
        self.assertIn(NS_BYTESTREAMS, info["disco_info"]["features"])
        self.assertIn(("proxy", "bytestreams"),
                      {(category, kind) for category, kind, _lang, _name in info["disco_info"]["identities"]})
        items = await alice["xep_0030"].get_items(DOMAIN, timeout=STEP_TIMEOUT)
        self.assertIn(PROXY, {str(jid) for jid, _node, _name in items["disco_items"]["items"]})


class HostileSocks(Socks5TestCase):
    def connect(self):
        sock = socket.create_connection((LOOPBACK, self.server.port("proxy65")), timeout=STEP_TIMEOUT)
        self.addCleanup(sock.close)
        return sock

    def test_bad_greetings_are_refused_and_closed(self):
        cases = {
            "SOCKS4": (b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00", b""),
            "HTTP": (b"GET / HTTP/1.1\r\n\r\n", b""),
            "username/password only": (b"\x05\x01\x02", b"\x05\xff"),
            "no methods": (b"\x05\x00", b"\x05\xff"),
        }
        for name, (greeting, reply) in cases.items():
            with self.subTest(name):
                sock = self.connect()
                sock.sendall(greeting)
                self.assertEqual(read_until_closed(sock), reply)

    def test_bad_requests_get_their_reply_code(self):
        digest = b"0" * 40
        failure = b"\x00\x01" + b"\x00" * 6
        cases = {
            "IPv4 address": (b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x00", b"\x05\x08" + failure),
            "BIND": (b"\x05\x02\x00\x03\x28" + digest + b"\x00\x00", b"\x05\x07" + failure),
            "oversize address": (b"\x05\x01\x00\x03\xff" + b"a" * 255 + b"\x00\x00", b"\x05\x01" + failure),
            "not hex": (b"\x05\x01\x00\x03\x28" + b"z" * 40 + b"\x00\x00", b"\x05\x01" + failure),
        }
        for name, (request, reply) in cases.items():
            with self.subTest(name):
                sock = self.connect()
                sock.sendall(b"\x05\x01\x00")
                self.assertEqual(recv_exactly(sock, 2), b"\x05\x00")
                sock.sendall(request)
                self.assertEqual(read_until_closed(sock), reply)

    def test_early_close_leaves_the_proxy_serving(self):
        for partial in (b"\x05", b"\x05\x01\x00\x05\x01", b""):
            sock = self.connect()
            sock.sendall(partial)
            sock.close()
        sock = self.connect()
        sock.sendall(b"\x05\x01\x00")
        self.assertEqual(recv_exactly(sock, 2), b"\x05\x00")


class Configuration(unittest.TestCase):
    def test_bad_proxy65_settings_are_reported_with_file_and_line(self):
        server = ProxyServer()
        self.addCleanup(server.remove_files)
        server.write_config()
        text = server.config_path.read_text()
        port_line = f"port: {server.ports['proxy65']}"
        cases = {
            "unknown key": text.replace("activation_timeout: 30", "activation_timeout: 30\n  colour: blue"),
            "bad port": text.replace(port_line, "port: 0"),
            "bad rate": text.replace(f"rate: {RATE}", "rate: fast"),
            "domain is a host": text.replace("activation_timeout: 30",
                                             f"activation_timeout: 30\n  domain: {DOMAIN}"),
            "port of a c2s listener": text.replace(port_line, f"port: {server.ports['starttls']}"),
            "max_pending below a pair": text.replace("activation_timeout: 30",
                                                     "activation_timeout: 30\n  max_pending: 1"),
        }
        for name, broken in cases.items():
            with self.subTest(name):
                self.assertNotEqual(broken, text)
                changed = next(number for number, (a, b) in enumerate(
                    itertools.zip_longest(text.splitlines(), broken.splitlines(), fillvalue=""), start=1)
                    if a != b)
                server.config_path.write_text(broken)
                result = server.ctl("check-config")
                self.assertNotEqual(result.returncode, 0, result.stdout)
                self.assertIn(f"{server.config_path}:{changed}", result.stdout + result.stderr)


def socks5_connect(port, digest):
    """A raw SOCKS5 client negotiated with the proxy for digest, as XEP-0065 does."""
    sock = socket.create_connection((LOOPBACK, port), timeout=STEP_TIMEOUT)
    sock.sendall(b"\x05\x01\x00")
    if recv_exactly(sock, 2) != b"\x05\x00":
        raise AssertionError("the proxy did not accept 'no authentication'")
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(digest)]) + digest.encode() + b"\x00\x00")
    reply = recv_exactly(sock, 5 + len(digest) + 2)
    if reply[:2] != b"\x05\x00":
        raise AssertionError(f"the proxy refused the request: {reply!r}")
    return sock


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}, expected {count} bytes")
        data += chunk
    return data


def read_until_closed(sock):
    """Everything the proxy sends until it closes the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


if __name__ == "__main__":
    unittest.main()
