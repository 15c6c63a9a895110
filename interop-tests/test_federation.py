"""Federation end to end: parleyd and a real Prosody 0.12, finding each
other through SRV records served by the lab's unbound, with certificates
from the lab's throwaway CA (lab.py).

parley.test is parleyd on 127.0.0.1; prosody.test is Prosody on its own
127.0.0.x, with its MUC service conference.prosody.test.
"""

import asyncio
import base64
import socket
import time
import unittest
import xml.etree.ElementTree as ET

import harness
import lab as federation_lab
from harness import LOOPBACK, NS_SASL, NS_STREAM, STEP_TIMEOUT, Client, qname, to_text

PARLEY_DOMAIN = "parley.test"
PROSODY_DOMAIN = "prosody.test"
NS_DIALBACK = "jabber:server:dialback"
FEDERATION_TIMEOUT = 20.0  # first contact: DNS, TCP, TLS and authentication both ways, under ASan


class FederatedServer(harness.Server):
    """parleyd serving parley.test with s2s listeners (STARTTLS and Direct
    TLS), resolving through the lab DNS and trusting the lab CA."""

    def __init__(self, lab, s2s=None):
        super().__init__()
        self.lab = lab
        self.domain = PARLEY_DOMAIN
        self.ca_cert = lab.ca.cert
        self.cert, self.key = lab.issue_certificate(PARLEY_DOMAIN)
        self.s2s_port = harness.free_port()
        self.s2s_direct_port = harness.free_port()
        self.s2s = {
            "secure_auth": "required",
            "ca_file": str(lab.ca.cert),
            "connect_timeout": 10,
        }
        self.s2s.update(s2s or {})

    def publish_dns(self, direct_tls=False):
        """A and _xmpp-server records, plus _xmpps-server with direct_tls."""
        self.lab.dns.remove(PARLEY_DOMAIN)
        self.lab.dns.add_domain(
            PARLEY_DOMAIN, LOOPBACK, srv=[(0, 5, self.s2s_port, PARLEY_DOMAIN)],
            srvs=[(0, 5, self.s2s_direct_port, PARLEY_DOMAIN)] if direct_tls else [])

    def config(self):
        config = super().config()
        config["listen"] = config["listen"] + [
            {"module": "s2s", "address": LOOPBACK, "port": self.s2s_port, "tls": "starttls"},
            {"module": "s2s", "address": LOOPBACK, "port": self.s2s_direct_port, "tls": "direct"},
        ]
        # The lab DNS has its port once started.
        config["s2s"] = {"dns_servers": [self.lab.dns_server], **self.s2s}
        return config


def chat(sender, to, body):
    sender.send_message(mto=to, mbody=body, mtype="chat")


class FederationTestCase(unittest.IsolatedAsyncioTestCase):
    """A fresh lab (DNS, CA, Prosody) and parleyd per test; every log is
    printed when the test fails."""

    s2s_settings = None
    server_class = FederatedServer
    prosody_options = {}
    direct_tls = False  # publish and serve only Direct TLS records

    def setUp(self):
        self.lab = federation_lab.Lab()
        self.server = None
        self.clients = []
        self.addCleanup(self._cleanup)
        self.prosody = self.lab.prosody(PROSODY_DOMAIN, direct_tls=self.direct_tls,
                                        extra_config="muc_room_locking = false",
                                        **self.prosody_options)
        if self.direct_tls:
            # Only _xmpps-server: Parley must take the Direct TLS route.
            for name in (PROSODY_DOMAIN, self.prosody.muc_domain):
                self.lab.dns.remove(name)
                self.lab.dns.add_domain(name, self.prosody.address, srvs=[
                    (0, 5, self.prosody.ports["s2s_direct_tls"], PROSODY_DOMAIN)])
        self.server = self.server_class(self.lab, self.s2s_settings)
        self.server.publish_dns(direct_tls=self.direct_tls)
        self.add_records(self.lab.dns)
        self.lab.dns.start()

    def add_records(self, dns):
        """More DNS records for a test case, before the DNS starts."""

    def _cleanup(self):
        ok = self._outcome_ok()
        try:
            if self.server is not None:
                try:
                    self.server.stop()
                finally:
                    self.server.kill()
        finally:
            if not ok:
                self.lab.keep_files = True
                log = self.server.log()[-60000:] if self.server is not None else ""
                print("\n===== parleyd log =====\n" + log + "\n" + self.lab.logs()[-40000:])
            self.lab.close()
            if ok and self.server is not None:
                self.server.remove_files()

    def _outcome_ok(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return True
        result = getattr(outcome, "result", None)
        if result is not None:
            return all(test is not self for test, _ in result.errors + result.failures)
        return getattr(outcome, "success", True)

    async def asyncTearDown(self):
        for client in self.clients:
            await client.close()

    async def parley_user(self, user, password="parley-pw", **options):
        jid = self.server.register(user, password)
        client = Client(self.server, jid, password, **options)
        self.clients.append(client)
        await client.login()
        client.send_presence()  # available: chat to the bare JID reaches it, not offline storage
        return client

    async def prosody_user(self, user, password="prosody-pw", register=True, ca_cert=None):
        if register:
            self.prosody.register(user, password)
        client = federation_lab.ProsodyClient(self.prosody, user, password)
        if ca_cert is not None:
            client.ca_certs = str(ca_cert)
        self.clients.append(client)
        await client.login()
        client.send_presence()
        return client

    def s2s_lines(self):
        result = self.server.ctl("s2s")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    async def log_line(self, text, since=0, timeout=STEP_TIMEOUT):
        """wait_for_log in a thread: the event loop (and slixmpp) keeps running."""
        return await asyncio.to_thread(self.server.wait_for_log, text, since, timeout)

    async def exchange_messages(self, parley, prosody, tag):
        chat(parley, prosody.boundjid.bare, f"{tag}: hello from parley")
        await prosody.wait_message(f"{tag}: hello from parley", timeout=FEDERATION_TIMEOUT)
        chat(prosody, parley.boundjid.bare, f"{tag}: hello from prosody")
        await parley.wait_message(f"{tag}: hello from prosody", timeout=FEDERATION_TIMEOUT)


class Federation(FederationTestCase):
    """1: subscriptions, presence and chat both ways, SASL EXTERNAL both ways."""

    async def test_subscribe_presence_and_chat_with_sasl_external(self):
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        alice_jid, bob_jid = alice.boundjid.bare, bob.boundjid.bare
        for client in (alice, bob):
            await client.get_roster()
        bob.auto_authorize = True
        alice.auto_authorize = True
        alice.send_presence(pto=bob_jid, ptype="subscribe")
        await alice.wait_for(lambda s: s.name == "presence" and s["type"] == "subscribed"
                             and s["from"].bare == bob_jid, timeout=FEDERATION_TIMEOUT)
        bob.send_presence(pto=alice_jid, ptype="subscribe")
        await bob.wait_for(lambda s: s.name == "presence" and s["type"] == "subscribed"
                           and s["from"].bare == alice_jid, timeout=FEDERATION_TIMEOUT)
        # Each side now sees the other's presence.
        await alice.wait_for(lambda s: s.name == "presence" and s["type"] == "available"
                             and s["from"].bare == bob_jid, timeout=FEDERATION_TIMEOUT)
        await bob.wait_for(lambda s: s.name == "presence" and s["type"] == "available"
                           and s["from"].bare == alice_jid, timeout=FEDERATION_TIMEOUT)
        await self.exchange_messages(alice, bob, "chat")
        lines = self.s2s_lines()
        outbound = [l for l in lines if l[0] == "out" and l[2] == PROSODY_DOMAIN]
        inbound = [l for l in lines if l[0] == "in" and l[2] == PROSODY_DOMAIN]
        self.assertTrue(outbound, lines)
        self.assertTrue(inbound, lines)
        for line in outbound + inbound:
            self.assertEqual(line[1], PARLEY_DOMAIN, line)
            self.assertEqual(line[3], "SASL EXTERNAL", line)
            self.assertTrue(line[4].startswith("TLSv1."), line)


class UntrustedPeer(FederationTestCase):
    """2: Prosody's certificate comes from a CA Parley does not trust."""

    prosody_options = {"secure_auth": False, "insecure_domains": [PARLEY_DOMAIN]}

    def setUp(self):
        super().setUp()
        rogue = federation_lab.CertificateAuthority(self.lab.directory / "rogue", name="rogue ca")
        self.prosody.install_certificate(*rogue.issue(PROSODY_DOMAIN))
        self.rogue_ca = rogue.cert  # what Prosody's own clients must trust now

    async def test_dialback_when_secure_auth_is_optional(self):
        self.server.s2s["secure_auth"] = "optional"
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob", ca_cert=self.rogue_ca)
        await self.exchange_messages(alice, bob, "dialback")
        lines = self.s2s_lines()
        auth = {l[0]: l[3] for l in lines if l[2] == PROSODY_DOMAIN}
        # Prosody trusts Parley's certificate, so Parley may still use EXTERNAL
        # towards it; Prosody's side can only be dialback.
        self.assertEqual(auth.get("in"), "dialback", lines)
        self.assertIn(auth.get("out"), ("SASL EXTERNAL", "dialback"), lines)

    async def test_refused_when_secure_auth_is_required(self):
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        mark = self.server.log_mark()
        chat(alice, f"bob@{PROSODY_DOMAIN}", "never delivered")
        error = await alice.wait_for(lambda s: s.name == "message" and s["type"] == "error",
                                     timeout=FEDERATION_TIMEOUT)
        self.assertEqual(error["error"]["condition"], "remote-server-not-found")
        line = await self.log_line("federation failed", since=mark)
        self.assertIn("certificate trust", line)


class DirectTls(FederationTestCase):
    """3: Direct TLS both ways, found through _xmpps-server._tcp only."""

    direct_tls = True

    async def test_direct_tls_through_xmpps_server_records(self):
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        mark = self.server.log_mark()
        await self.exchange_messages(alice, bob, "direct")
        # Outbound to Prosody's Direct TLS port, inbound on Parley's.
        await self.log_line(f":{self.prosody.ports['s2s_direct_tls']} (direct TLS)", since=mark)
        await self.log_line("in: connection from", since=mark)
        inbound = [line for line in self.server.log().splitlines() if "in: connection from" in line]
        self.assertTrue(inbound and all("(direct TLS)" in line for line in inbound), inbound)
        lines = self.s2s_lines()
        self.assertTrue([l for l in lines if l[0] == "out" and l[3] == "SASL EXTERNAL"], lines)


class GroupChat(FederationTestCase):
    """4: a Parley user in a room of Prosody's MUC service."""

    async def test_join_remote_room_and_exchange_groupchat(self):
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        room = f"lounge@{self.prosody.muc_domain}"
        muc = "{http://jabber.org/protocol/muc}x"
        for client, nick in ((bob, "bob"), (alice, "alice")):
            join = client.make_presence(pto=f"{room}/{nick}")
            join.append(ET.Element(muc))
            join.send()
            await client.wait_for(
                lambda s, nick=nick: s.name == "presence" and str(s["from"]) == f"{room}/{nick}"
                and s["type"] != "error", timeout=FEDERATION_TIMEOUT)
        await bob.wait_for(lambda s: s.name == "presence" and str(s["from"]) == f"{room}/alice",
                           timeout=FEDERATION_TIMEOUT)
        alice.send_message(mto=room, mbody="hello room from parley", mtype="groupchat")
        for client in (alice, bob):
            message = await client.wait_message("hello room from parley", timeout=FEDERATION_TIMEOUT)
            self.assertEqual(str(message["from"]), f"{room}/alice")
            self.assertEqual(message["type"], "groupchat")
        bob.send_message(mto=room, mbody="hello room from prosody", mtype="groupchat")
        message = await alice.wait_message("hello room from prosody", timeout=FEDERATION_TIMEOUT)
        self.assertEqual(str(message["from"]), f"{room}/bob")


class Unreachable(FederationTestCase):
    """5: an unresolvable domain and a port that never answers."""

    s2s_settings = {"connect_timeout": 3}

    def setUp(self):
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.silent.bind((LOOPBACK, 0))
        self.silent.listen(16)  # accepts through the backlog, never says a word
        self.addCleanup(self.silent.close)
        super().setUp()

    def add_records(self, dns):
        dns.add_domain("silent.test", LOOPBACK,
                       srv=[(0, 5, self.silent.getsockname()[1], "silent.test")])

    async def test_unresolvable_domain_bounces_remote_server_not_found(self):
        self.server.start()
        alice = await self.parley_user("alice")
        mark = self.server.log_mark()
        chat(alice, "someone@nowhere.test", "into the void")
        error = await alice.wait_for(lambda s: s.name == "message" and s["type"] == "error",
                                     timeout=FEDERATION_TIMEOUT)
        self.assertEqual(error["error"]["condition"], "remote-server-not-found")
        self.assertEqual(error["from"], "someone@nowhere.test")
        self.assertIn("DNS", await self.log_line("federation failed", since=mark))

    async def test_silent_port_bounces_remote_server_timeout(self):
        self.server.start()
        alice = await self.parley_user("alice")
        mark = self.server.log_mark()
        started = time.monotonic()
        for n in range(3):
            chat(alice, "someone@silent.test", f"waiting {n}")
        errors = []
        for n in range(3):
            error = await alice.wait_for(
                lambda s, n=n: s.name == "message" and s["type"] == "error"
                and s["body"] == f"waiting {n}", timeout=FEDERATION_TIMEOUT)
            errors.append(error)
        elapsed = time.monotonic() - started
        for error in errors:
            self.assertEqual(error["error"]["condition"], "remote-server-timeout")
        self.assertGreaterEqual(elapsed, 2.5)
        self.assertLess(elapsed, 3 + 4)
        self.assertIn("timeout", await self.log_line("federation failed", since=mark))


class RawServerPeer(harness.RawClient):
    """A remote server written by hand, connecting to Parley's STARTTLS s2s
    port, so tests can send what no real server would."""

    def __init__(self, server, domain, cert=None, key=None):
        endpoint = type("ParleyEndpoint", (), {
            "domain": PARLEY_DOMAIN, "ca_cert": server.ca_cert,
            "port": staticmethod(lambda mode: server.s2s_port)})
        self.peer_domain = domain
        self.cert, self.key = cert, key
        super().__init__(endpoint)

    def _tls_context(self):
        context = super()._tls_context()
        if self.cert:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def open_stream(self):
        self._reset_parser()
        self.send(f"<?xml version='1.0'?><stream:stream from='{self.peer_domain}' "
                  f"to='{PARLEY_DOMAIN}' version='1.0' xmlns='jabber:server' "
                  f"xmlns:db='{NS_DIALBACK}' xmlns:stream='{NS_STREAM}'>")
        features = self.recv()
        if features.tag != qname(NS_STREAM, "features"):
            raise AssertionError("expected stream features, got " + to_text(features))
        return features

    def secure(self):
        """STARTTLS; returns the features after it."""
        self.open_stream()
        return self.starttls()

    def external(self):
        features = self.secure()
        assert "EXTERNAL" in self.mechanisms(features), to_text(features)
        authzid = base64.b64encode(self.peer_domain.encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{authzid}</auth>")
        answer = self.recv()
        assert answer.tag == qname(NS_SASL, "success"), to_text(answer)
        return self.open_stream()

    def message(self, sender, to, body):
        self.send(f"<message from='{sender}' to='{to}' type='chat'><body>{body}</body></message>")


class HostilePeer(FederationTestCase):
    """6: a raw peer that lies about who it is."""

    s2s_settings = {"secure_auth": "optional"}

    def peer(self, domain="raw.test", with_certificate=True):
        cert, key = self.lab.issue_certificate(domain) if with_certificate else (None, None)
        peer = RawServerPeer(self.server, domain, cert, key)
        self.addCleanup(peer.close)
        return peer

    async def test_spoofed_from_is_invalid_from(self):
        self.server.start()
        alice = await self.parley_user("alice")
        peer = self.peer()
        peer.external()
        peer.message("mallory@raw.test", alice.boundjid.bare, "genuine")
        await alice.wait_message("genuine")
        peer.message("mallory@other.test", alice.boundjid.bare, "forged")
        self.assertEqual(peer.stream_error(), "invalid-from")
        await alice.ping_server()
        self.assertFalse([s for s in alice.received if s.name == "message" and s["body"] == "forged"])

    async def test_unknown_host_is_host_unknown(self):
        self.server.start()
        peer = self.peer()
        peer.external()
        peer.message("mallory@raw.test", "someone@elsewhere.test", "misdirected")
        self.assertEqual(peer.stream_error(), "host-unknown")

    async def test_external_needs_a_certificate_for_the_claimed_domain(self):
        self.server.start()
        peer = RawServerPeer(self.server, PROSODY_DOMAIN, *self.lab.issue_certificate("raw.test"))
        self.addCleanup(peer.close)
        features = peer.secure()
        self.assertNotIn("EXTERNAL", peer.mechanisms(features))
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        answer = peer.recv()
        self.assertEqual(answer.tag, qname(NS_SASL, "failure"), to_text(answer))

    async def test_dialback_with_a_wrong_key_is_refused(self):
        # Prosody is the authoritative server the peer claims to speak for.
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        peer = self.peer(PROSODY_DOMAIN, with_certificate=False)
        features = peer.secure()
        self.assertIsNotNone(features.find("{urn:xmpp:features:dialback}dialback"), to_text(features))
        mark = self.server.log_mark()
        peer.send(f"<db:result from='{PROSODY_DOMAIN}' to='{PARLEY_DOMAIN}'>"
                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</db:result>")
        answer = peer.wait_for(lambda e: e.tag == qname(NS_DIALBACK, "result"),
                               timeout=FEDERATION_TIMEOUT)
        self.assertEqual(answer.get("type"), "invalid", to_text(answer))
        self.assertIn("dialback refused", await self.log_line("federation failed", since=mark))
        # Not authenticated: a stanza from that domain is refused.
        peer.message(f"mallory@{PROSODY_DOMAIN}", alice.boundjid.bare, "after a refused key")
        self.assertEqual(peer.stream_error(), "invalid-from")


class ProsodyRestart(FederationTestCase):
    """7: Prosody restarts mid-conversation; what Parley queued meanwhile
    arrives once, in order."""

    s2s_settings = {"connect_timeout": 30}

    async def test_queued_messages_arrive_in_order_after_a_restart(self):
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        bob_jid = bob.boundjid.bare
        await self.exchange_messages(alice, bob, "before")
        await bob.close()
        self.clients.remove(bob)
        mark = self.server.log_mark()
        await asyncio.to_thread(self.prosody.stop)
        await self.log_line("out parley.test -> prosody.test: the peer closed the stream", since=mark)
        mark = self.server.log_mark()
        bodies = [f"queued {n}" for n in range(5)]
        for body in bodies:
            chat(alice, bob_jid, body)
        await self.log_line("retrying in", since=mark)
        await asyncio.to_thread(self.prosody.start)
        await self.log_line("out parley.test -> prosody.test: authenticated", since=mark,
                                 timeout=FEDERATION_TIMEOUT)
        chat(alice, bob_jid, "after the restart")
        bob = await self.prosody_user("bob", register=False)  # its presence flushes offline messages
        await bob.wait_message("after the restart", timeout=FEDERATION_TIMEOUT)
        received = [s["body"] for s in bob.received
                    if s.name == "message" and s["body"].startswith(("queued", "after"))]
        self.assertEqual(received, bodies + ["after the restart"])
        errors = [s for s in alice.received if s.name == "message" and s["type"] == "error"]
        self.assertEqual(errors, [])


class IdleStreams(FederationTestCase):
    """Streams without traffic for s2s.idle_timeout are closed; the next
    stanza opens a new one."""

    s2s_settings = {"idle_timeout": 2}

    async def test_idle_stream_closes_and_reopens_on_demand(self):
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        await self.exchange_messages(alice, bob, "first")
        mark = self.server.log_mark()
        await self.log_line("out parley.test -> prosody.test: idle, closing", since=mark, timeout=10)
        await self.log_line("out parley.test -> prosody.test: the peer closed the stream", since=mark)
        self.assertFalse([line for line in self.s2s_lines() if line[0] == "out"], self.s2s_lines())
        chat(alice, bob.boundjid.bare, "after idle")
        await bob.wait_message("after idle", timeout=FEDERATION_TIMEOUT)
        self.assertTrue([line for line in self.s2s_lines() if line[0] == "out"], self.s2s_lines())
