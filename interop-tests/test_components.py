"""External components (XEP-0114): slixmpp's ComponentXMPP connects to parleyd's
component listener as an echo service; the handshake, the addressing rules, one
connection per domain, routing while connected and away, and disco#items."""

import asyncio
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError

import harness
from harness import DOMAIN, LOOPBACK, STEP_TIMEOUT, ServerTestCase, free_port

ECHO = f"echo.{DOMAIN}"
ECHO_SECRET = "echo-component-secret-7f3a"
TAKEOVER = f"takeover.{DOMAIN}"
TAKEOVER_SECRET = "takeover-component-secret-91c2"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"


class ComponentServer(harness.Server):
    """parleyd with a component listener (no TLS, loopback) and two components:
    echo (a second connection is refused) and takeover (replace: true)."""

    def write_config(self):
        if not self.ports:
            self.ports = {mode: free_port() for mode in self.LISTENER_MODES}
            self.ports["component"] = free_port()
        super().write_config()

    def config(self):
        config = super().config()
        config["listen"] = config["listen"] + [
            {"module": "component", "address": LOOPBACK, "port": self.ports["component"]}]
        config["components"] = [
            {"domain": ECHO, "secret": ECHO_SECRET},
            {"domain": TAKEOVER, "secret": TAKEOVER_SECRET, "replace": True},
        ]
        return config


class Component(slixmpp.ComponentXMPP):
    """A component that answers every message with body B by 'echo: B' from the
    address it was sent to, and keeps what it receives and its stream errors."""

    def __init__(self, server, domain, secret):
        super().__init__(domain, secret, LOOPBACK, server.port("component"))
        self.received = []
        self.stream_errors = []
        self._arrival = asyncio.Event()
        self.outcome = asyncio.get_event_loop().create_future()
        self.gone = asyncio.Event()
        self.add_filter("in", self._keep)
        self.add_event_handler("session_start", self._settle("session"))
        self.add_event_handler("disconnected", self._settle("disconnected"))
        self.add_event_handler("disconnected", lambda _event: self.gone.set())
        self.add_event_handler("connection_failed", self._settle("connection_failed"))
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("message", self._echo)

    async def get_dns_records(self, domain, port=None):
        return [(domain, LOOPBACK, self.server_port)]

    def _keep(self, stanza):
        self.received.append(stanza)
        self._arrival.set()
        return stanza

    def _settle(self, outcome):
        def handler(_event):
            if not self.outcome.done():
                self.outcome.set_result(outcome)
        return handler

    def _on_stream_error(self, error):
        self.stream_errors.append(error)
        self._arrival.set()

    def _echo(self, message):
        if message["type"] in ("chat", "normal") and message["body"]:
            message.reply(f"echo: {message['body']}").send()

    async def start(self, timeout=STEP_TIMEOUT):
        """Connects and returns how the attempt ended: "session" once the
        handshake is accepted, else "disconnected" or "connection_failed"."""
        self.connect()
        return await asyncio.wait_for(asyncio.shield(self.outcome), timeout)

    async def wait_stream_error(self, timeout=STEP_TIMEOUT):
        deadline = asyncio.get_event_loop().time() + timeout
        while not self.stream_errors:
            remaining = deadline - asyncio.get_event_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{self.boundjid}: no stream error within {timeout}s")
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return self.stream_errors[0]["condition"]

    async def wait_disconnected(self, timeout=STEP_TIMEOUT):
        # slixmpp replaces its 'disconnected' future once it is done: an
        # event of our own also covers a disconnection that already happened.
        await asyncio.wait_for(self.gone.wait(), timeout)

    async def close(self, timeout=STEP_TIMEOUT):
        if self.transport is None:
            return
        waiter = self.disconnected
        self.disconnect()
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            self.abort()


class ComponentTestCase(ServerTestCase):

    def setUp(self):
        self.server = ComponentServer()
        self.addCleanup(self._stop_server)
        self.server.start()

    def component(self, domain=ECHO, secret=ECHO_SECRET):
        component = Component(self.server, domain, secret)
        self.addAsyncCleanup(component.close)
        return component

    async def connected(self, domain=ECHO, secret=ECHO_SECRET):
        component = self.component(domain, secret)
        outcome = await component.start()
        self.assertEqual(outcome, "session", f"{domain} handshake ended with {outcome}")
        return component

    async def assert_echo(self, client, text, to=ECHO):
        mark = len(client.received)
        client.send_message(mto=to, mbody=text, mtype="chat")
        reply = await client.wait_message(body=f"echo: {text}", start=mark)
        self.assertEqual(reply["from"], slixmpp.JID(to))
        self.assertEqual(reply["to"], client.boundjid)

    async def ping(self, client, to=ECHO):
        """An iq to the component; returns the error condition, or None for a result."""
        iq = client.Iq()
        iq["type"] = "get"
        iq["to"] = to
        iq.xml.append(ET.Element(f"{{{NS_PING}}}ping"))
        try:
            await iq.send(timeout=STEP_TIMEOUT)
        except IqError as error:
            return error.iq["error"]["condition"]
        return None


class Handshake(ComponentTestCase):

    async def test_wrong_secret_is_not_authorized(self):
        mark = self.server.log_mark()
        intruder = self.component(secret="not-the-secret")
        outcome = await intruder.start()
        self.assertNotEqual(outcome, "session")
        self.assertEqual(await intruder.wait_stream_error(), "not-authorized")
        self.server.wait_for_log(f"{ECHO}: handshake refused", since=mark)
        # The domain is still free for the real component.
        self.register("alice")
        alice = await self.logged_in("alice")
        await self.connected()
        await self.assert_echo(alice, "after a refused handshake")

    async def test_unknown_domain_is_host_unknown(self):
        stranger = self.component(domain=f"stranger.{DOMAIN}", secret=ECHO_SECRET)
        outcome = await stranger.start()
        self.assertNotEqual(outcome, "session")
        self.assertEqual(await stranger.wait_stream_error(), "host-unknown")


class Addressing(ComponentTestCase):

    async def test_spoofed_from_is_invalid_from(self):
        self.register("alice", "bob")
        alice = await self.logged_in("alice")
        bob = await self.logged_in("bob")
        echo = await self.connected()
        echo.send_raw(f"<message from='alice@{DOMAIN}' to='{bob.boundjid}' type='chat'>"
                      "<body>forged</body></message>")
        self.assertEqual(await echo.wait_stream_error(), "invalid-from")
        await echo.wait_disconnected()
        # The forged message was never delivered: bob's next message from alice
        # is the real one.
        alice.send_message(mto=bob.boundjid, mbody="real", mtype="chat")
        first = await bob.wait_message(sender=alice.boundjid.bare)
        self.assertEqual(first["body"], "real")

    async def test_any_address_at_the_component_may_send(self):
        self.register("alice")
        alice = await self.logged_in("alice")
        echo = await self.connected()
        for sender in (ECHO, f"room@{ECHO}", f"room@{ECHO}/nick"):
            echo.send_message(mto=alice.boundjid, mfrom=sender, mbody=f"from {sender}", mtype="chat")
            message = await alice.wait_message(body=f"from {sender}")
            self.assertEqual(message["from"], slixmpp.JID(sender))


class OneConnectionPerDomain(ComponentTestCase):

    async def test_second_connection_gets_conflict(self):
        self.register("alice")
        alice = await self.logged_in("alice")
        first = await self.connected()
        second = self.component()
        outcome = await second.start()
        self.assertNotEqual(outcome, "session")
        self.assertEqual(await second.wait_stream_error(), "conflict")
        # The first connection keeps serving the domain.
        self.assertEqual(first.stream_errors, [])
        await self.assert_echo(alice, "still the first")

    async def test_replace_hands_the_domain_to_the_newcomer(self):
        self.register("alice")
        alice = await self.logged_in("alice")
        old = await self.connected(TAKEOVER, TAKEOVER_SECRET)
        new = await self.connected(TAKEOVER, TAKEOVER_SECRET)
        self.assertEqual(await old.wait_stream_error(), "conflict")
        await old.wait_disconnected()
        mark = len(new.received)
        await self.assert_echo(alice, "to the new one", to=TAKEOVER)
        self.assertTrue(any(s.name == "message" and s["body"] == "to the new one"
                            for s in new.received[mark:]))


class Routing(ComponentTestCase):

    async def test_user_message_gets_the_component_echo(self):
        self.register("alice")
        alice = await self.logged_in("alice")
        echo = await self.connected()
        await self.assert_echo(alice, "hello component")
        await self.assert_echo(alice, "to a room", to=f"room@{ECHO}")
        await self.assert_echo(alice, "to a nick", to=f"room@{ECHO}/nick")
        delivered = [s for s in echo.received if s.name == "message"]
        self.assertEqual([s["from"] for s in delivered], [alice.boundjid] * 3)

    async def test_disconnected_component_is_service_unavailable_then_reconnect_restores(self):
        self.register("alice")
        alice = await self.logged_in("alice")
        self.assertEqual(await self.ping(alice), "service-unavailable")
        mark = len(alice.received)
        alice.send_message(mto=f"room@{ECHO}", mbody="nobody home", mtype="chat")
        error = await alice.wait_for(lambda s: s.name == "message" and s["type"] == "error",
                                     start=mark)
        self.assertEqual(error["error"]["condition"], "service-unavailable")
        self.assertEqual(error["from"], slixmpp.JID(f"room@{ECHO}"))
        # Presence to an absent component is dropped, never answered.
        mark = len(alice.received)
        alice.send_presence(pto=f"room@{ECHO}/alice")
        await alice.ping_server()
        self.assertFalse(any(s.name == "presence" and s["type"] == "error"
                             for s in alice.received[mark:]))

        log_mark = self.server.log_mark()
        echo = await self.connected()
        self.server.wait_for_log(f"{ECHO}: authenticated", since=log_mark)
        self.assertEqual(await self.ping(alice), "feature-not-implemented")
        await self.assert_echo(alice, "first connection")

        await echo.close()
        self.server.wait_for_log(f"{ECHO}: disconnected", since=log_mark)
        self.assertEqual(await self.ping(alice), "service-unavailable")

        await self.connected()
        await self.assert_echo(alice, "after reconnecting")


class Discovery(ComponentTestCase):

    async def test_host_disco_items_list_the_components(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=("xep_0030",))
        items = await alice["xep_0030"].get_items(jid=DOMAIN, timeout=STEP_TIMEOUT)
        jids = {item[0] for item in items["disco_items"]["items"]}
        self.assertIn(ECHO, jids)
        self.assertIn(TAKEOVER, jids)
