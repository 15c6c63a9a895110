"""Connection limits: authentication timeout, whitespace keepalive, idle
timeout and the read shaper, with limits small enough to observe."""

import time

from harness import RawClient, Server, ServerTestCase


class LimitedServer(Server):
    def __init__(self, limits):
        super().__init__()
        self.limits = limits

    def config(self):
        config = super().config()
        config["limits"] = self.limits
        return config


class LimitedServerTestCase(ServerTestCase):
    LIMITS = {}

    def setUp(self):
        self.server = LimitedServer(self.LIMITS)
        self.addCleanup(self._stop_server)
        self.server.start()


class Timeouts(LimitedServerTestCase):
    LIMITS = {"auth_timeout": 1, "idle_timeout": 3, "keepalive_interval": 1}

    async def test_unauthenticated_connection_times_out(self):
        raw = self.raw()
        raw.open_stream()
        self.assertEqual(raw.stream_error(timeout=5), "connection-timeout")

    async def test_keepalive_then_idle_timeout(self):
        self.register("alice")
        raw = self.raw_logged_in("alice")
        raw.sock.settimeout(2.5)
        keepalive = raw.sock.recv(1024)
        self.assertTrue(keepalive, "the server must keep a quiet stream alive")
        self.assertEqual(keepalive.strip(), b"", f"a keepalive is whitespace only, got {keepalive!r}")
        self.assertEqual(raw.stream_error(timeout=5), "connection-timeout")


class Shaper(LimitedServerTestCase):
    RATE = 4096
    LIMITS = {"c2s_rate": RATE, "c2s_burst": RATE, "max_stanza_size": 10000, "max_send_queue": 65536}

    async def test_reads_are_held_to_the_configured_rate(self):
        self.register("alice")
        raw = self.raw_logged_in("alice")
        body = "x" * 2000
        count = 8
        started = time.monotonic()
        for index in range(count):
            raw.send(f"<message to='alice@{raw.domain}/raw' type='chat' id='m{index}'>"
                     f"<body>{body}</body></message>")
        for index in range(count):
            raw.wait_for(lambda e, i=index: e.get("id") == f"m{i}", timeout=30)
        elapsed = time.monotonic() - started
        sent = count * (len(body) + 80)
        # The bucket starts full (one burst) and the shaper pauses after a
        # read, so the last read (at most 8 KiB) goes unpaused: everything
        # else arrives at RATE bytes/s. Unshaped, this takes milliseconds.
        minimum = (sent - self.LIMITS["c2s_burst"] - 8192) / self.RATE
        self.assertGreaterEqual(elapsed, minimum * 0.9,
                                f"{sent} bytes were read in {elapsed:.2f}s, faster than the shaper allows")
