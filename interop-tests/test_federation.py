"""Federation end to end: parleyd and a real Prosody 0.12 on their own
loopback addresses, finding each other through SRV records served by a
throwaway unbound, with certificates from a throwaway CA.

parley.test is parleyd on 127.0.0.1; prosody.test is Prosody on 127.0.0.2,
with its MUC service conference.prosody.test.
"""

import asyncio
import base64
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

import harness
from harness import LOOPBACK, NS_SASL, NS_STREAM, STEP_TIMEOUT, Client, qname, to_text

PARLEY_DOMAIN = "parley.test"
PROSODY_DOMAIN = "prosody.test"
PROSODY_ADDRESS = "127.0.0.2"
DNS_ADDRESS = "127.0.0.53"
NS_DIALBACK = "jabber:server:dialback"
FEDERATION_TIMEOUT = 20.0  # first contact: DNS, TCP, TLS and dialback both ways, under ASan


def _free_port(address):
    """A port free for both TCP and UDP on address (unbound takes both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                except OSError:
                    continue
            return port
    raise AssertionError(f"no free port on {address}")


class Process:
    """A child process whose output goes to a file and is watched for lines."""

    def __init__(self, name, args, log_path, cwd=None):
        self.name = name
        self.log_path = log_path
        self._lines = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
            preexec_fn=harness._die_with_parent)
        self._reader = threading.Thread(target=self._copy, daemon=True)
        self._reader.start()

    def _copy(self):
        with open(self.log_path, "a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def mark(self):
        with self._changed:
            return len(self._lines)

    def wait_for(self, text, since=0, timeout=STEP_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[since:]:
                    if text in line:
                        return line
                since = len(self._lines)
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"{self.name} exited ({self.process.returncode}) "
                                         f"before logging {text!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name}: no line with {text!r} within {timeout}s")
                self._changed.wait(min(remaining, 0.5))

    def stop(self, timeout=10):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)


class Lab:
    """A throwaway CA, an unbound serving the test domains, Prosody, and the
    parleyd configuration that federates with them."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.ca_cert, self.parley_cert, self.parley_key = harness.make_certificates(
            self.dir, PARLEY_DOMAIN)
        self.prosody_cert, self.prosody_key = harness.issue_certificate(self.dir, PROSODY_DOMAIN)
        self.dns_port = _free_port(DNS_ADDRESS)
        self.parley_s2s_port = _free_port(LOOPBACK)
        self.parley_s2s_direct_port = _free_port(LOOPBACK)
        self.prosody_c2s_port = _free_port(PROSODY_ADDRESS)
        self.prosody_s2s_port = _free_port(PROSODY_ADDRESS)
        self.prosody_s2s_direct_port = _free_port(PROSODY_ADDRESS)
        self.prosody_ca = self.ca_cert  # what Prosody's own clients trust
        self.dns = None
        self.prosody = None
        self.extra_records = []

    # DNS

    def records(self, prosody_srv="starttls"):
        """prosody_srv: starttls (_xmpp-server), direct (_xmpps-server only)."""
        lines = [
            f"{PARLEY_DOMAIN}. A {LOOPBACK}",
            f"_xmpp-server._tcp.{PARLEY_DOMAIN}. SRV 0 5 {self.parley_s2s_port} {PARLEY_DOMAIN}.",
            f"{PROSODY_DOMAIN}. A {PROSODY_ADDRESS}",
            f"conference.{PROSODY_DOMAIN}. A {PROSODY_ADDRESS}",
        ]
        if prosody_srv == "direct":
            lines.append(f"_xmpps-server._tcp.{PARLEY_DOMAIN}. SRV 0 5 "
                         f"{self.parley_s2s_direct_port} {PARLEY_DOMAIN}.")
        for name in (PROSODY_DOMAIN, f"conference.{PROSODY_DOMAIN}"):
            if prosody_srv == "direct":
                lines.append(f"_xmpps-server._tcp.{name}. SRV 0 5 "
                             f"{self.prosody_s2s_direct_port} {PROSODY_DOMAIN}.")
            else:
                lines.append(f"_xmpp-server._tcp.{name}. SRV 0 5 "
                             f"{self.prosody_s2s_port} {PROSODY_DOMAIN}.")
        return lines + self.extra_records

    def start_dns(self, prosody_srv="starttls"):
        config = self.dir / "unbound.conf"
        data = "\n".join(f'    local-data: "{record}"' for record in self.records(prosody_srv))
        config.write_text(f"""server:
    interface: {DNS_ADDRESS}@{self.dns_port}
    port: {self.dns_port}
    access-control: 127.0.0.0/8 allow
    chroot: ""
    username: ""
    directory: "{self.dir}"
    pidfile: "{self.dir}/unbound.pid"
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 1
    do-not-query-address: 0.0.0.0/0
    module-config: "iterator"
    local-zone: "." refuse
    local-zone: "test." static
{data}
remote-control:
    control-enable: no
""")
        self.dns = Process("unbound", ["unbound", "-d", "-c", str(config)],
                           self.dir / "unbound.log")
        self.dns.wait_for("start of service")

    # Prosody

    def prosody_config(self, secure_auth=True, trusted_by_parley=True):
        certs = self.dir / "prosody-certs"
        certs.mkdir(exist_ok=True)
        if trusted_by_parley:
            cert, key = self.prosody_cert, self.prosody_key
        else:
            cert, key = self._untrusted_prosody_certificate()
        (certs / f"{PROSODY_DOMAIN}.crt").write_bytes(Path(cert).read_bytes())
        (certs / f"{PROSODY_DOMAIN}.key").write_bytes(Path(key).read_bytes())
        data = self.dir / "prosody-data"
        data.mkdir(exist_ok=True)
        lua_bool = "true" if secure_auth else "false"
        insecure = "" if secure_auth else f's2s_insecure_domains = {{ "{PARLEY_DOMAIN}" }}'
        path = self.dir / "prosody.cfg.lua"
        path.write_text(f"""
run_as_root = true
daemonize = false
pidfile = "{self.dir}/prosody.pid"
data_path = "{data}"
admin_socket = "{self.dir}/prosody.sock"
log = {{ {{ levels = {{ min = "debug" }}, to = "console" }} }}
interfaces = {{ "{PROSODY_ADDRESS}" }}
local_interfaces = {{ "{PROSODY_ADDRESS}" }}
c2s_ports = {{ {self.prosody_c2s_port} }}
s2s_ports = {{ {self.prosody_s2s_port} }}
s2s_direct_tls_ports = {{ {self.prosody_s2s_direct_port} }}
c2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "s2s_auth_certs" }}
modules_disabled = {{ "s2s_bidi" }}
certificates = "{certs}"
ssl = {{ cafile = "{self.ca_cert}" }}
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {lua_bool}
{insecure}
authentication = "internal_hashed"
storage = "internal"
unbound = {{ resolvconf = false; hoststxt = false; forward = {{ "{DNS_ADDRESS}@{self.dns_port}" }};
            options = {{ ["local-zone:"] = "test. transparent" }} }}
VirtualHost "{PROSODY_DOMAIN}"
Component "conference.{PROSODY_DOMAIN}" "muc"
    restrict_room_creation = false
    muc_room_locking = false
""")
        return path

    def _untrusted_prosody_certificate(self):
        other = self.dir / "other-ca"
        other.mkdir(exist_ok=True)
        self.prosody_ca, cert, key = harness.make_certificates(other, PROSODY_DOMAIN)
        return cert, key

    def register_prosody_user(self, user, password):
        subprocess.run(["prosodyctl", "--config", str(self.dir / "prosody.cfg.lua"), "register",
                        user, PROSODY_DOMAIN, password], check=True, capture_output=True,
                       timeout=30)
        return f"{user}@{PROSODY_DOMAIN}"

    def start_prosody(self, **options):
        config = self.prosody_config(**options)
        self.prosody = Process("prosody", ["prosody", "-F", "--config", str(config)],
                               self.dir / "prosody.log", cwd=self.dir)
        self.prosody.wait_for(f"Activated service 's2s' on [{PROSODY_ADDRESS}]:{self.prosody_s2s_port}")
        self.prosody.wait_for(f"Activated service 'c2s' on [{PROSODY_ADDRESS}]:{self.prosody_c2s_port}")
        return self.prosody

    def restart_prosody(self):
        self.prosody.stop()
        self.prosody = Process("prosody", ["prosody", "-F", "--config",
                                           str(self.dir / "prosody.cfg.lua")],
                               self.dir / "prosody.log", cwd=self.dir)
        self.prosody.wait_for(f"Activated service 's2s' on [{PROSODY_ADDRESS}]:{self.prosody_s2s_port}")

    def stop(self):
        for process in (self.prosody, self.dns):
            if process is not None:
                process.stop()

    def logs(self):
        text = ""
        for name in ("unbound.log", "prosody.log"):
            path = self.dir / name
            if path.exists():
                text += f"\n===== {name} =====\n" + path.read_text(errors="replace")[-20000:]
        return text


class FederatedServer(harness.Server):
    """parleyd serving parley.test with s2s listeners (STARTTLS and Direct TLS)
    and the lab's DNS server and CA."""

    def __init__(self, lab, s2s=None):
        super().__init__()
        self.lab = lab
        self.domain = PARLEY_DOMAIN
        self.ca_cert, self.cert, self.key = lab.ca_cert, lab.parley_cert, lab.parley_key
        self.s2s = {
            "secure_auth": "required",
            "dns_servers": [f"{DNS_ADDRESS}:{lab.dns_port}"],
            "ca_file": str(lab.ca_cert),
            "connect_timeout": 10,
        }
        self.s2s.update(s2s or {})

    def config(self):
        config = super().config()
        config["listen"] = config["listen"] + [
            {"module": "s2s", "address": LOOPBACK, "port": self.lab.parley_s2s_port,
             "tls": "starttls"},
            {"module": "s2s", "address": LOOPBACK, "port": self.lab.parley_s2s_direct_port,
             "tls": "direct"},
        ]
        config["s2s"] = self.s2s
        return config


class ProsodyClient(Client):
    """slixmpp logged in to Prosody (SCRAM-SHA-1: all Prosody 0.12 offers)."""

    def __init__(self, lab, jid, password, **options):
        endpoint = type("ProsodyEndpoint", (), {
            "ca_cert": lab.prosody_ca,
            "port": staticmethod(lambda mode: lab.prosody_c2s_port)})
        super().__init__(endpoint, jid, password, mechanism="SCRAM-SHA-1", **options)

    async def get_dns_records(self, domain, port=None):
        return [(domain, PROSODY_ADDRESS, self.server_port)]

    def start_connect(self):
        self.connect(address=(PROSODY_ADDRESS, self.server_port), force_starttls=True)


def chat(sender, to, body):
    sender.send_message(mto=to, mbody=body, mtype="chat")


class FederationTestCase(unittest.IsolatedAsyncioTestCase):
    """A fresh lab and parleyd per test; logs of all three on failure."""

    s2s_settings = None
    prosody_options = {}
    prosody_srv = "starttls"

    def setUp(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="parley-federation-"))
        self.lab = Lab(self.workdir)
        self.server = None
        self.clients = []
        self.addCleanup(self._cleanup)
        self.lab.start_dns(self.prosody_srv)
        self.lab.prosody_config(**self.prosody_options)
        self.server = FederatedServer(self.lab, self.s2s_settings)

    def _cleanup(self):
        try:
            if self.server is not None:
                try:
                    self.server.stop()
                finally:
                    self.server.kill()
        finally:
            self.lab.stop()
        if not self._outcome_ok():
            log = self.server.log()[-60000:] if self.server is not None else ""
            print("\n===== parleyd log =====\n" + log + self.lab.logs())
        else:
            if self.server is not None:
                self.server.remove_files()
            shutil.rmtree(self.workdir, ignore_errors=True)

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

    async def prosody_user(self, user, password="prosody-pw", **options):
        jid = self.lab.register_prosody_user(user, password)
        client = ProsodyClient(self.lab, jid, password, **options)
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
        self.lab.start_prosody()
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

    prosody_options = {"secure_auth": False, "trusted_by_parley": False}

    async def test_dialback_when_secure_auth_is_optional(self):
        self.server.s2s["secure_auth"] = "optional"
        self.lab.start_prosody(**self.prosody_options)
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        await self.exchange_messages(alice, bob, "dialback")
        lines = self.s2s_lines()
        auth = {l[0]: l[3] for l in lines if l[2] == PROSODY_DOMAIN}
        # Prosody trusts Parley's certificate, so Parley may still use EXTERNAL
        # towards it; Prosody's side can only be dialback.
        self.assertEqual(auth.get("in"), "dialback", lines)
        self.assertIn(auth.get("out"), ("SASL EXTERNAL", "dialback"), lines)

    async def test_refused_when_secure_auth_is_required(self):
        self.lab.start_prosody(**self.prosody_options)
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

    prosody_srv = "direct"

    async def test_direct_tls_through_xmpps_server_records(self):
        self.lab.start_prosody()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        mark = self.server.log_mark()
        await self.exchange_messages(alice, bob, "direct")
        # Outbound to Prosody's Direct TLS port, inbound on Parley's.
        await self.log_line(f":{self.lab.prosody_s2s_direct_port} (direct TLS)", since=mark)
        await self.log_line("in: connection from", since=mark)
        inbound = [line for line in self.server.log().splitlines() if "in: connection from" in line]
        self.assertTrue(inbound and all("(direct TLS)" in line for line in inbound), inbound)
        lines = self.s2s_lines()
        self.assertTrue([l for l in lines if l[0] == "out" and l[3] == "SASL EXTERNAL"], lines)


class GroupChat(FederationTestCase):
    """4: a Parley user in a room of Prosody's MUC service."""

    async def test_join_remote_room_and_exchange_groupchat(self):
        self.lab.start_prosody()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        room = f"lounge@conference.{PROSODY_DOMAIN}"
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

    def records_for_silent(self):
        port = self.silent.getsockname()[1]
        return [f"silent.test. A {LOOPBACK}",
                f"_xmpp-server._tcp.silent.test. SRV 0 5 {port} silent.test."]

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
        self.lab.dns.stop()
        self.lab.extra_records = self.records_for_silent()
        self.lab.start_dns()
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

    def __init__(self, lab, domain, cert=None, key=None):
        endpoint = type("ParleyEndpoint", (), {
            "domain": PARLEY_DOMAIN, "ca_cert": lab.ca_cert,
            "port": staticmethod(lambda mode: lab.parley_s2s_port)})
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
        cert, key = harness.issue_certificate(self.lab.dir, domain) if with_certificate else (None, None)
        peer = RawServerPeer(self.lab, domain, cert, key)
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
        peer = RawServerPeer(self.lab, PROSODY_DOMAIN, *harness.issue_certificate(self.lab.dir, "raw.test"))
        self.addCleanup(peer.close)
        features = peer.secure()
        self.assertNotIn("EXTERNAL", peer.mechanisms(features))
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        answer = peer.recv()
        self.assertEqual(answer.tag, qname(NS_SASL, "failure"), to_text(answer))

    async def test_dialback_with_a_wrong_key_is_refused(self):
        # Prosody is the authoritative server the peer claims to speak for.
        self.lab.start_prosody()
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
        self.lab.start_prosody()
        self.server.start()
        alice = await self.parley_user("alice")
        bob = await self.prosody_user("bob")
        bob_jid = bob.boundjid.bare
        await self.exchange_messages(alice, bob, "before")
        await bob.close()
        self.clients.remove(bob)
        mark = self.server.log_mark()
        await asyncio.to_thread(self.lab.prosody.stop)
        await self.log_line("out parley.test -> prosody.test: the peer closed the stream", since=mark)
        mark = self.server.log_mark()
        bodies = [f"queued {n}" for n in range(5)]
        for body in bodies:
            chat(alice, bob_jid, body)
        await self.log_line("retrying in", since=mark)
        await asyncio.to_thread(self.lab.restart_prosody)
        await self.log_line("out parley.test -> prosody.test: authenticated", since=mark,
                                 timeout=FEDERATION_TIMEOUT)
        chat(alice, bob_jid, "after the restart")
        bob = ProsodyClient(self.lab, bob_jid, "prosody-pw")
        self.clients.append(bob)
        await bob.login()
        bob.send_presence()  # flushes offline messages
        await bob.wait_message("after the restart", timeout=FEDERATION_TIMEOUT)
        received = [s["body"] for s in bob.received
                    if s.name == "message" and s["body"].startswith(("queued", "after"))]
        self.assertEqual(received, bodies + ["after the restart"])
        errors = [s for s in alice.received if s.name == "message" and s["type"] == "error"]
        self.assertEqual(errors, [])
