"""External components (XEP-0114): slixmpp's ComponentXMPP connects to parleyd's
component listener as an echo service; the handshake, the addressing rules, one
connection per domain, routing while connected and away, and disco#items.
Then a real bridge: biboumi (XMPP-IRC gateway) on irc.localhost, an ngircd IRC
server, and a plain IRC client talking with a Parley user in a channel."""

import asyncio
import hashlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import slixmpp
from slixmpp.exceptions import IqError

import harness
from harness import (DOMAIN, LOOPBACK, NS_STANZA_ERRORS, STEP_TIMEOUT, ServerTestCase, error_condition,
                     free_port, qname)

ECHO = f"echo.{DOMAIN}"
ECHO_SECRET = "echo-component-secret-7f3a"
TAKEOVER = f"takeover.{DOMAIN}"
TAKEOVER_SECRET = "takeover-component-secret-91c2"
IRC_GATEWAY = f"irc.{DOMAIN}"
IRC_GATEWAY_SECRET = "biboumi-component-secret-4d8e"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"


class ComponentServer(harness.Server):
    """parleyd with a component listener (no TLS, loopback) and two components:
    echo (a second connection is refused) and takeover (replace: true)."""

    def write_config(self):
        if not self.ports:
            self.ports = {mode: free_port() for mode in self.LISTENER_MODES}
            self.ports["component"] = free_port()
            self.ports["component_tls"] = free_port()
        super().write_config()

    def config(self):
        config = super().config()
        config["listen"] = config["listen"] + [
            {"module": "component", "address": LOOPBACK, "port": self.ports["component"]},
            {"module": "component", "address": LOOPBACK, "port": self.ports["component_tls"],
             "tls": "direct"}]
        config["components"] = [
            {"domain": ECHO, "secret": ECHO_SECRET},
            {"domain": TAKEOVER, "secret": TAKEOVER_SECRET, "replace": True},
            {"domain": IRC_GATEWAY, "secret": IRC_GATEWAY_SECRET},
        ]
        return config


class Component(slixmpp.ComponentXMPP):
    """A component that answers every message with body B by 'echo: B' from the
    address it was sent to, and keeps what it receives and its stream errors."""

    def __init__(self, server, domain, secret, direct_tls=False):
        super().__init__(domain, secret, LOOPBACK,
                         server.port("component_tls" if direct_tls else "component"))
        self.direct_tls = direct_tls
        self.ca_certs = str(server.ca_cert)
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
        self.connect(use_ssl=self.direct_tls)
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

    def component(self, domain=ECHO, secret=ECHO_SECRET, direct_tls=False):
        component = Component(self.server, domain, secret, direct_tls)
        self.addAsyncCleanup(component.close)
        return component

    async def connected(self, domain=ECHO, secret=ECHO_SECRET, direct_tls=False):
        component = self.component(domain, secret, direct_tls)
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


    async def test_direct_tls_listener(self):
        self.register("alice")
        alice = await self.logged_in("alice")
        mark = self.server.log_mark()
        echo = await self.connected(direct_tls=True)
        self.server.wait_for_log("(direct TLS)", since=mark)
        self.assertEqual(echo.socket.version(), "TLSv1.3")
        await self.assert_echo(alice, "over TLS")


class RawComponent(harness.RawClient):
    """The component protocol by hand, for input slixmpp would not send."""

    def __init__(self, server):
        super().__init__(server, mode="component")

    def open(self, domain=ECHO):
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                  f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>")
        deadline = time.monotonic() + self.timeout
        while not self.stream_attributes:
            if time.monotonic() >= deadline:
                raise AssertionError("no stream header from the server")
            self._read_some(deadline - time.monotonic())
        return self.stream_attributes

    def handshake(self, domain=ECHO, secret=ECHO_SECRET):
        header = self.open(domain)
        digest = hashlib.sha1((header["id"] + secret).encode()).hexdigest()
        self.send(f"<handshake>{digest.upper()}</handshake>")
        answer = self.recv()
        if answer.tag != "{jabber:component:accept}handshake":
            raise AssertionError("handshake refused: " + harness.to_text(answer))
        return header


class ProtocolEdges(ComponentTestCase):

    async def test_header_then_uppercase_digest_accepted(self):
        raw = self.raw_component()
        header = raw.handshake()
        self.assertEqual(header["from"], ECHO)
        self.assertGreaterEqual(len(header["id"]), 16)
        self.server.wait_for_log(f"{ECHO}: authenticated")

    async def test_missing_from_is_improper_addressing(self):
        raw = self.raw_component()
        raw.handshake()
        raw.send(f"<message to='alice@{DOMAIN}'><body>who am I</body></message>")
        self.assertEqual(raw.stream_error(), "improper-addressing")

    async def test_malformed_to_is_answered_and_the_stream_stays(self):
        self.register("alice")
        alice = await self.logged_in("alice")
        raw = self.raw_component()
        raw.handshake()
        raw.send(f"<iq type='get' id='q1' from='{ECHO}' to='a@b@c'><ping xmlns='{NS_PING}'/></iq>")
        answer = raw.wait_for(lambda e: e.get("id") == "q1")
        self.assertEqual(answer.get("type"), "error")
        error = answer.find("{jabber:component:accept}error")
        self.assertEqual(error_condition(error, NS_STANZA_ERRORS), "jid-malformed")
        raw.send(f"<message from='{ECHO}' to='{alice.boundjid}' type='chat'><body>still here</body></message>")
        await alice.wait_message(body="still here", sender=ECHO)

    async def test_other_elements_are_unsupported_stanza_type(self):
        raw = self.raw_component()
        raw.handshake()
        raw.send(f"<query xmlns='jabber:iq:roster' from='{ECHO}' to='{DOMAIN}'/>")
        self.assertEqual(raw.stream_error(), "unsupported-stanza-type")

    async def test_sigterm_sends_system_shutdown(self):
        echo = await self.connected()
        self.assertEqual(self.server.stop(), 0)
        self.assertEqual(await echo.wait_stream_error(), "system-shutdown")

    def raw_component(self):
        raw = RawComponent(self.server)
        self.addCleanup(raw.close)
        return raw


class HandshakeTimeout(ComponentTestCase):

    def setUp(self):
        self.server = ComponentServer()
        self.server.config = self._with_short_auth_timeout(self.server.config)
        self.addCleanup(self._stop_server)
        self.server.start()

    @staticmethod
    def _with_short_auth_timeout(config):
        def patched():
            settings = config()
            settings["limits"] = {"auth_timeout": 2}
            return settings
        return patched

    async def test_no_handshake_is_connection_timeout(self):
        raw = RawComponent(self.server)
        self.addCleanup(raw.close)
        raw.open()
        started = time.monotonic()
        self.assertEqual(raw.stream_error(timeout=STEP_TIMEOUT), "connection-timeout")
        self.assertGreaterEqual(time.monotonic() - started, 1.5)


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
        # A stream the server ended frees the domain: the component reconnects.
        await self.connected()
        await self.assert_echo(alice, "back after invalid-from")

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


class Operations(ComponentTestCase):

    def component_lines(self):
        result = self.server.ctl("components")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return {line.split("\t")[0]: line.split("\t")[1:] for line in result.stdout.splitlines() if line}

    async def test_parleyctl_components_shows_who_is_connected(self):
        lines = self.component_lines()
        self.assertEqual(lines[ECHO], ["disconnected", "-", "-", "-"])
        log_mark = self.server.log_mark()
        echo = await self.connected()
        self.server.wait_for_log(f"{ECHO}: authenticated", since=log_mark)
        state, address, tls_version, stream_id = self.component_lines()[ECHO]
        self.assertEqual(state, "connected")
        self.assertTrue(address.startswith(f"{LOOPBACK}:"), address)
        self.assertEqual(tls_version, "-")
        self.assertNotEqual(stream_id, "-")
        await echo.close()
        self.server.wait_for_log(f"{ECHO}: disconnected", since=log_mark)
        self.assertEqual(self.component_lines()[ECHO], ["disconnected", "-", "-", "-"])


class Discovery(ComponentTestCase):

    async def test_host_disco_items_list_the_components(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=("xep_0030",))
        items = await alice["xep_0030"].get_items(jid=DOMAIN, timeout=STEP_TIMEOUT)
        jids = {item[0] for item in items["disco_items"]["items"]}
        self.assertIn(ECHO, jids)
        self.assertIn(TAKEOVER, jids)


# --- a real bridge: biboumi and ngircd ------------------------------------------

IRC_PORT = 6667  # biboumi's default plain-text port: no per-server ad-hoc setup needed
IRC_TLS_PORTS = (6697, 6670)  # biboumi tries these first; they must refuse quickly
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"


def _port_free(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def free_irc_address():
    """A loopback address (127.0.0.x) where the IRC ports are all free, so the
    IRC server gets biboumi's default port without touching anyone else's."""
    for last in range(100, 250):
        address = f"127.0.0.{last}"
        if all(_port_free(address, port) for port in (IRC_PORT, *IRC_TLS_PORTS)):
            return address
    raise AssertionError("no loopback address with free IRC ports")


def _stop(process, timeout=harness.STOP_TIMEOUT):
    """SIGTERM by PID, SIGKILL if it hangs."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class LogWatcher:
    """Copies a process's output to a file and lets tests wait for a line."""

    def __init__(self, process, path):
        self.path = path
        self.lines = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._copy, args=(process,), daemon=True)
        self.thread.start()

    def _copy(self, process):
        with open(self.path, "a") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                with self.changed:
                    self.lines.append(line)
                    self.changed.notify_all()

    def wait_for(self, text, timeout=STEP_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.changed:
            while not any(text in line for line in self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.path.name}: no line with {text!r} within {timeout}s")
                self.changed.wait(remaining)


class IrcServer:
    """ngircd in the foreground on address:6667, no DNS or ident lookups.
    (As root it drops to 'nobody' by itself.)"""

    def __init__(self, workdir, address):
        self.address = address
        config = Path(workdir, "ngircd.conf")
        config.write_text(
            "[Global]\n"
            "\tName = irc.parley.test\n"
            "\tInfo = Parley test IRC server\n"
            f"\tListen = {address}\n"
            f"\tPorts = {IRC_PORT}\n"
            "\tPidFile =\n"
            "\tMotdPhrase = \"Parley test\"\n"
            "[Options]\n"
            "\tDNS = no\n"
            "\tIdent = no\n"
            "\tPAM = no\n")
        self.process = subprocess.Popen(
            [shutil.which("ngircd"), "--nodaemon", "--config", str(config)], cwd=workdir,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", preexec_fn=harness._die_with_parent)
        self.log = LogWatcher(self.process, Path(workdir, "ngircd.log"))
        self.log.wait_for(f"Now listening on [{address}]:{IRC_PORT}")

    def stop(self):
        _stop(self.process)


class Biboumi:
    """biboumi connected to parleyd as the component irc.localhost."""

    def __init__(self, workdir, component_port, admin):
        self.workdir = Path(workdir)
        config = self.workdir / "biboumi.cfg"
        config.write_text(
            f"hostname={IRC_GATEWAY}\n"
            f"password={IRC_GATEWAY_SECRET}\n"
            f"xmpp_server_ip={LOOPBACK}\n"
            f"port={component_port}\n"
            f"admin={admin}\n"
            "identd_port=0\n"
            f"policy_directory={self.workdir}\n"
            f"db_name={self.workdir / 'biboumi.sqlite'}\n"
            "log_file=\n"
            "log_level=0\n"
            "realname_customization=true\n"
            "realname_from_jid=false\n")
        self.process = subprocess.Popen(
            [shutil.which("biboumi"), str(config)], cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", preexec_fn=harness._die_with_parent)
        self.log = LogWatcher(self.process, self.workdir / "biboumi.log")

    def stop(self):
        _stop(self.process)


class IrcClient:
    """A plain IRC client over a socket: registers, joins, sends PRIVMSG, and
    keeps every line it receives (answering PING itself)."""

    def __init__(self, address, nick):
        self.nick = nick
        self.sock = socket.create_connection((address, IRC_PORT), timeout=STEP_TIMEOUT)
        self.lines = queue.Queue()
        self.transcript = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :Parley test IRC user")
        self.expect(lambda words: words[1] == "001")

    def send(self, line):
        self.sock.sendall((line + "\r\n").encode())

    def _read(self):
        buffer = b""
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    break
                buffer += data
                while b"\r\n" in buffer:
                    raw, buffer = buffer.split(b"\r\n", 1)
                    line = raw.decode(errors="replace")
                    if line.startswith("PING "):
                        self.send("PONG " + line[5:])
                        continue
                    self.lines.put(line)
        except OSError:
            pass
        self.lines.put(None)

    def expect(self, predicate, timeout=STEP_TIMEOUT):
        """The first line (split into words, with the prefix as words[0])
        for which predicate holds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"IRC {self.nick}: expected line not seen; got:\n"
                                     + "\n".join(self.transcript))
            self.transcript.append(line)
            words = line.split(" ")
            if not line.startswith(":"):
                words.insert(0, "")
            if len(words) > 1 and predicate(words):
                return line

    async def wait(self, predicate, timeout=STEP_TIMEOUT):
        return await asyncio.to_thread(self.expect, predicate, timeout)

    def close(self):
        try:
            self.send("QUIT :bye")
        except OSError:
            pass
        self.sock.close()


@unittest.skipUnless(shutil.which("biboumi") and shutil.which("ngircd"),
                     "needs Debian's biboumi and ngircd (scripts/install-deps.sh test)")
class IrcBridge(ComponentTestCase):

    def setUp(self):
        super().setUp()
        self.irc_dir = Path(tempfile.mkdtemp(prefix="parley-irc-"))
        self.irc_server = IrcServer(self.irc_dir, free_irc_address())
        self.addCleanup(self._stop_irc)
        self.channel = f"#test%{self.irc_server.address}@{IRC_GATEWAY}"

    def _stop_irc(self):
        self.irc_server.stop()
        if self._outcome_ok():
            shutil.rmtree(self.irc_dir, ignore_errors=True)
        else:
            for name in ("ngircd.log", "biboumi.log"):
                path = self.irc_dir / name
                if path.exists():
                    text = path.read_text(errors="replace")[-20000:]
                    print(f"\n----- {name} -----\n{text}")

    def start_biboumi(self):
        mark = self.server.log_mark()
        biboumi = Biboumi(self.irc_dir, self.server.port("component"), f"alice@{DOMAIN}")
        self.addCleanup(biboumi.stop)
        self.server.wait_for_log(f"{IRC_GATEWAY}: authenticated", since=mark)
        return biboumi

    async def test_parley_user_and_irc_user_talk_in_a_channel(self):
        self.register("alice")
        self.start_biboumi()
        ircbob = IrcClient(self.irc_server.address, "ircbob")
        self.addCleanup(ircbob.close)
        ircbob.send("JOIN #test")
        ircbob.expect(lambda words: words[1] == "366")  # end of NAMES: joined

        alice = await self.logged_in("alice")
        occupant = slixmpp.JID(f"{self.channel}/alice")
        join = alice.Presence()
        join["to"] = occupant
        join.xml.append(ET.Element(f"{{{NS_MUC}}}x"))
        mark = len(alice.received)
        join.send()
        # The gateway's self-presence (status 110) says alice is in the channel.
        await alice.wait_for(lambda s: s.name == "presence" and s["from"] == occupant
                             and s["type"] != "error"
                             and s.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}status[@code='110']")
                             is not None, timeout=30, start=mark)
        await ircbob.wait(lambda words: words[0].startswith(":alice!") and words[1] == "JOIN")

        alice.send_message(mto=self.channel, mbody="hello from xmpp", mtype="groupchat")
        line = await ircbob.wait(lambda words: words[0].startswith(":alice!")
                                 and words[1] == "PRIVMSG" and words[2] == "#test")
        self.assertTrue(line.endswith(":hello from xmpp"), line)

        mark = len(alice.received)
        ircbob.send("PRIVMSG #test :hello from irc")
        message = await alice.wait_for(lambda s: s.name == "message" and s["type"] == "groupchat"
                                       and s["body"] == "hello from irc", start=mark)
        self.assertEqual(message["from"], slixmpp.JID(f"{self.channel}/ircbob"))
