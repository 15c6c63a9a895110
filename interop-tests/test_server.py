"""Whole-server behaviour: graceful shutdown, SIGHUP reload, built-in services, parleyctl."""

import datetime
import hashlib
import signal
import socket
import subprocess
import time
import unittest

from harness import (LOOPBACK, NS_DELAY, NS_ROSTER, PASSWORDS, STEP_TIMEOUT, Server, ServerTestCase,
                     certificate_fingerprint, issue_certificate, qname, stanza_error_condition,
                     to_text)


class Shutdown(ServerTestCase):

    async def test_sigterm_notifies_clients_and_keeps_data(self):
        self.register("alice", "bob", "carol", "dave")
        alice = self.raw_logged_in("alice", "desk")
        alice.send("<iq type='set' id='add-bob'><query xmlns='jabber:iq:roster'>"
                   "<item jid='bob@localhost' name='Bobby'><group>Friends</group></item>"
                   "</query></iq>")
        alice.wait_for(lambda e: e.get("id") == "add-bob" and e.get("type") == "result")
        alice.send("<presence to='bob@localhost' type='subscribe'/>")
        alice.message("carol@localhost", "kept across a restart")
        alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")  # all of the above routed

        dave = await self.logged_in("dave")
        strophe = self.strophe("bob@localhost/strophe", PASSWORDS["bob"])
        strophe.expect("CONNECTED bob@localhost/strophe")

        exit_code = self.server.stop()  # checked last: what follows says more on failure

        self.assertEqual(alice.stream_error(), "system-shutdown")
        error = await dave.wait_stream_error()
        self.assertEqual(error["condition"], "system-shutdown")
        await strophe.wait("STREAM-ERROR system-shutdown")
        self.assertEqual(strophe.close(), 3)

        self.server.start()  # same config, same sqlite file

        alice = self.raw_logged_in("alice", "desk")
        roster = alice.iq(f"<query xmlns='{NS_ROSTER}'/>")
        items = roster.findall(f"{qname(NS_ROSTER, 'query')}/{qname(NS_ROSTER, 'item')}")
        self.assertEqual(len(items), 1, to_text(roster))
        bob_item = items[0]
        self.assertEqual((bob_item.get("jid"), bob_item.get("name"), bob_item.get("ask")),
                         ("bob@localhost", "Bobby", "subscribe"), to_text(roster))
        self.assertEqual(bob_item.findtext(qname(NS_ROSTER, "group")), "Friends")

        carol = await self.logged_in("carol")
        carol.send_presence()
        message = await carol.wait_message(body="kept across a restart")
        self.assertEqual(message["from"].bare, "alice@localhost")
        self.assertIsNotNone(message.xml.find(qname(NS_DELAY, "delay")), str(message))

        # The pending subscription request survived too (RFC 6121 §3.1.3).
        bob = await self.logged_in("bob")
        bob.send_presence()
        request = await bob.wait_for(lambda s: s.name == "presence"
                                     and s.xml.get("type") == "subscribe")
        self.assertEqual(str(request["from"]), "alice@localhost")

        self.assertEqual(exit_code, 0, "SIGTERM must end parleyd with exit code 0")


class Services(ServerTestCase):

    async def test_disco_ping_version_time(self):
        self.register("alice")
        client = await self.logged_in(
            "alice", plugins=["xep_0030", "xep_0092", "xep_0199", "xep_0202"])

        info = await client["xep_0030"].get_info(jid="localhost", local=False,
                                                 timeout=STEP_TIMEOUT)
        identities = {(category, kind) for category, kind, *_ in
                      info["disco_info"]["identities"]}
        self.assertIn(("server", "im"), identities)
        features = set(info["disco_info"]["features"])
        for feature in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping",
                        "jabber:iq:version", "urn:xmpp:time"):
            self.assertIn(feature, features)

        pong = await client["xep_0199"].send_ping("localhost", timeout=STEP_TIMEOUT)
        self.assertEqual(pong["type"], "result")

        version = await client["xep_0092"].get_version("localhost", timeout=STEP_TIMEOUT)
        self.assertEqual(version["type"], "result")
        self.assertTrue(version["software_version"]["name"], str(version))
        self.assertTrue(version["software_version"]["version"], str(version))

        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        answer = await client["xep_0202"].get_entity_time("localhost", timeout=STEP_TIMEOUT)
        after = datetime.datetime.now(datetime.timezone.utc)
        # slixmpp 1.8's entity_time["utc"] appends a second "Z" to a correct
        # XEP-0082 stamp and fails to parse it: read the XML instead.
        utc = answer.xml.findtext("{urn:xmpp:time}time/{urn:xmpp:time}utc")
        self.assertRegex(utc, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        server_time = datetime.datetime.fromisoformat(utc.replace("Z", "+00:00"))
        self.assertTrue(before <= server_time <= after, f"{before} <= {utc} <= {after}")
        self.assertRegex(answer.xml.findtext("{urn:xmpp:time}time/{urn:xmpp:time}tzo"),
                         r"^(Z|[+-]\d\d:\d\d)$")

        # A namespace nobody serves gets an error, not silence (RFC 6120 §8.2.3).
        raw = self.raw_logged_in("alice", "raw")
        reply = raw.iq("<query xmlns='urn:example:nothing-here'/>", to="localhost")
        self.assertEqual(reply.get("type"), "error", to_text(reply))
        self.assertIn(stanza_error_condition(reply),
                      ("service-unavailable", "feature-not-implemented"), to_text(reply))


class Reload(ServerTestCase):

    async def test_sighup_reloads_the_certificate(self):
        self.register("alice", "bob")
        alice = self.raw_logged_in("alice", "desk")
        old_fingerprint = hashlib.sha256(alice.tls.getpeercert(binary_form=True)).hexdigest()
        self.assertEqual(old_fingerprint, certificate_fingerprint(self.server.cert))

        issue_certificate(self.server.workdir, self.server.domain)
        new_fingerprint = certificate_fingerprint(self.server.cert)
        self.assertNotEqual(new_fingerprint, old_fingerprint)
        mark = self.server.log_mark()
        self.server.process.send_signal(signal.SIGHUP)
        self.server.wait_for_log("certificates reloaded", since=mark)

        bob = self.raw_logged_in("bob", "desk")
        self.assertEqual(hashlib.sha256(bob.tls.getpeercert(binary_form=True)).hexdigest(),
                         new_fingerprint, "new connections get the new certificate")
        alice.message("bob@localhost/desk", "same session as before the reload")
        bob.wait_message("same session as before the reload")

        # A broken certificate is refused and the running one kept.
        self.server.cert.write_text("not a certificate\n")
        mark = self.server.log_mark()
        self.server.process.send_signal(signal.SIGHUP)
        self.server.wait_for_log("reload failed", since=mark)
        newcomer = self.raw()
        newcomer.open_stream()
        newcomer.starttls()
        self.assertEqual(
            hashlib.sha256(newcomer.tls.getpeercert(binary_form=True)).hexdigest(),
            new_fingerprint)


def wait_until(probe, done, timeout=5.0, interval=0.05):
    """Runs probe() until done(result) or the timeout; returns the last result.
    For state only observable by asking (parleyctl output), never for protocol
    events, which the clients wait for."""
    deadline = time.monotonic() + timeout
    result = probe()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = probe()
    return result


def listed_users(output):
    """parleyctl users prints one account per line, as a localpart or a JID."""
    return {line.strip().split("@")[0] for line in output.splitlines() if line.strip()}


class Parleyctl(ServerTestCase):

    async def test_users_sessions_kick_status(self):
        self.register("alice", "bob")
        users = self.server.ctl("users", "localhost")
        self.assertEqual(users.returncode, 0, users.stderr)
        self.assertEqual(listed_users(users.stdout), {"alice", "bob"})

        duplicate = self.server.ctl("register", "alice", "localhost", "again")
        self.assertNotEqual(duplicate.returncode, 0, "registering a taken name must fail")

        alice = self.raw_logged_in("alice", "desk")
        bob = self.raw_logged_in("bob", "desk")
        sessions = self.server.ctl("sessions")
        self.assertEqual(sessions.returncode, 0, sessions.stderr)
        self.assertIn("alice@localhost/desk", sessions.stdout)
        self.assertIn("bob@localhost/desk", sessions.stdout)

        kick = self.server.ctl("kick", "alice@localhost/desk")
        self.assertEqual(kick.returncode, 0, kick.stdout + kick.stderr)
        alice.expect_closed()
        # The session leaves the registry as its connection winds down, an
        # instant after the close the client sees: allow that instant.
        sessions = wait_until(lambda: self.server.ctl("sessions"),
                              lambda out: "alice@localhost/desk" not in out.stdout)
        self.assertNotIn("alice@localhost/desk", sessions.stdout)
        self.assertIn("bob@localhost/desk", sessions.stdout)

        status = self.server.ctl("status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertTrue(status.stdout.strip())
        bob.message("bob@localhost/desk", "still served")
        bob.wait_message("still served")

    async def test_passwd_and_unregister(self):
        self.register("alice")
        changed = self.server.ctl("passwd", "alice", "localhost", "a-new-password")
        self.assertEqual(changed.returncode, 0, changed.stderr)

        old = await self.client("alice", PASSWORDS["alice"])
        self.assertEqual(await old.try_login(), "failed_auth")
        new = await self.client("alice", "a-new-password")
        await new.login()
        await new.close()

        removed = self.server.ctl("unregister", "alice", "localhost")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertNotIn("alice", listed_users(self.server.ctl("users", "localhost").stdout))
        gone = await self.client("alice", "a-new-password")
        self.assertEqual(await gone.try_login(), "failed_auth")
        self.assertEqual(gone.auth_failures[0]["condition"], "not-authorized")


class ParleyctlOffline(unittest.TestCase):
    """parleyctl against a config whose server is not running."""

    def setUp(self):
        self.server = Server()
        self.addCleanup(self.server.remove_files)
        self.server.write_config()

    def test_exit_code_3_when_not_running(self):
        for command in (["status"], ["sessions"], ["users", "localhost"],
                        ["kick", "alice@localhost/desk"]):
            with self.subTest(command=command):
                result = self.server.ctl(*command)
                self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
                self.assertTrue(result.stderr.strip(), "say why on stderr")

    def test_a_taken_port_is_named_in_one_line(self):
        for mode in self.server.LISTENER_MODES:
            with self.subTest(listener=mode), socket.socket() as squatter:
                squatter.bind((LOOPBACK, self.server.ports[mode]))
                squatter.listen()
                result = subprocess.run([self.server.parleyd, "--config", str(self.server.config_path)],
                                        capture_output=True, text=True, timeout=STEP_TIMEOUT)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(f"cannot listen on {LOOPBACK}:{self.server.ports[mode]}: Address already in use",
                              result.stdout + result.stderr)

    def test_check_config_reports_file_and_line(self):
        good = self.server.ctl("check-config")
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)

        text = self.server.config_path.read_text()
        cases = {
            "unknown key": text.replace("hosts:", "hostz:", 1),
            "bad port": text.replace(f"port: {self.server.ports['direct']}", "port: 70000"),
            "bad tls mode": text.replace('tls: "direct"', 'tls: "sometimes"'),
        }
        for name, broken in cases.items():
            with self.subTest(name):
                self.assertNotEqual(broken, text)
                changed = next(number for number, (a, b) in enumerate(
                    zip(text.splitlines(), broken.splitlines()), start=1) if a != b)
                self.server.config_path.write_text(broken)
                result = self.server.ctl("check-config")
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(f"{self.server.config_path}:{changed}",
                              result.stdout + result.stderr)

