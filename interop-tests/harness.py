"""End-to-end test harness: a throwaway parleyd on loopback, and clients to drive it.

Run with Debian's /usr/bin/python3 (it has python3-slixmpp). The binaries come
from the environment: PARLEYD, PARLEYCTL and STROPHE_CLIENT (set by CMake).
"""

import asyncio
import ctypes
import base64
import hashlib
import hmac
import os
import queue
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import slixmpp

DOMAIN = "localhost"
LOOPBACK = "127.0.0.1"
READY_MARKER = "parleyd ready"

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"

# Test accounts and their passwords (distinct, so a mix-up fails a login).
PASSWORDS = {
    "alice": "alice-secret-1",
    "bob": "bob-secret-2",
    "carol": "carol-secret-3",
    "dave": "dave-secret-4",
    "mallory": "mallory-secret-5",
}

START_TIMEOUT = 20.0   # parleyd is built with ASan: give it room on a shared machine
STOP_TIMEOUT = 15.0
STEP_TIMEOUT = 10.0    # one protocol round trip


def binary(env_name):
    path = os.environ.get(env_name)
    if not path:
        raise unittest.SkipTest(f"{env_name} is not set (run through ctest)")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{env_name}={path} is not an executable")
    return os.path.abspath(path)


_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Child side of Popen: if the test process is killed (ctest's timeout),
    the kernel ends parleyd and strophe_client too, instead of orphaning them."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_ports_handed_out = set()


def free_port():
    """A loopback port free right now and never returned before in this process:
    the kernel may hand the same ephemeral port to two probes in a row, and a
    config listing it twice is refused as a duplicate listener."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port


def qname(namespace, local):
    return f"{{{namespace}}}{local}"


def to_text(element):
    return ET.tostring(element, encoding="unicode")


def error_condition(element, namespace):
    """The defined condition inside a stream or stanza <error/>, or None."""
    for child in element:
        if child.tag.startswith(f"{{{namespace}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


def stanza_error_condition(stanza):
    error = stanza.find(qname(NS_CLIENT, "error"))
    return None if error is None else error_condition(error, NS_STANZA_ERRORS)


# --- certificates -----------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certificates(directory, domain):
    """A throwaway CA and a server certificate for domain (GUIDE §11)."""
    _openssl("req", "-x509", "-new", "-nodes", *_EC_KEY, "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "30", "-subj", "/CN=parley e2e test ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    cert, key = issue_certificate(directory, domain)
    return Path(directory, "ca.crt"), cert, key


def issue_certificate(directory, domain):
    """A fresh key and certificate for domain from the CA in directory,
    written over any previous one (SAN DNS:D and DNS:*.D)."""
    _openssl("req", "-new", "-nodes", *_EC_KEY, "-keyout", f"{domain}.key", "-out", f"{domain}.csr",
             "-subj", f"/CN={domain}", cwd=directory)
    Path(directory, f"{domain}.ext").write_text(
        f"subjectAltName=DNS:{domain},DNS:*.{domain}\n"
        "extendedKeyUsage=serverAuth\n"
        "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{domain}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "30", "-extfile", f"{domain}.ext",
             "-out", f"{domain}.crt", cwd=directory)
    return Path(directory, f"{domain}.crt"), Path(directory, f"{domain}.key")


def certificate_fingerprint(pem_path):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text())).hexdigest()


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


# --- the server under test ----------------------------------------------------

def _yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _yaml(value, indent=0):
    """Block YAML for the nested dicts/lists/scalars of a config."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) and not item:
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(item, (dict, list)):
                lines.append(f"{pad}{key}:")
                lines.append(_yaml(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict):
                first, *rest = _yaml(item, indent + 1).split("\n")
                lines.append(f"{pad}- {first.strip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    return "\n".join(lines)


DEFAULT_MODULES = {
    "roster": {},
    "presence": {},
    "offline": {"max_messages": 100},
    "disco": {},
    "ping": {},
    "version": {},
    "time": {},
    "register": {"open": True},
    "muc": {"service": f"conference.{DOMAIN}"},
    "carbons": {},
    "mam": {},
}


class Server:
    """One parleyd in its own temp dir, with its own certificates, SQLite file
    and ports: one c2s listener per TLS mode, self.ports maps mode → port."""

    LISTENER_MODES = ("starttls", "direct", "starttls_optional")

    def __init__(self):
        self.parleyd = binary("PARLEYD")
        self.parleyctl = binary("PARLEYCTL")
        self.workdir = Path(tempfile.mkdtemp(prefix="parley-e2e-"))
        self.domain = DOMAIN
        self.ca_cert, self.cert, self.key = make_certificates(self.workdir, self.domain)
        self.storage = f"sqlite:{self.workdir / 'parley.db'}"
        self.config_path = self.workdir / "parley.yml"
        self.admin_socket = self.workdir / "parleyd.sock"
        self.log_path = self.workdir / "parleyd.log"
        self.ports = {}
        self.process = None
        self._log_reader = None
        self._ready = threading.Event()
        self._log_lock = threading.Lock()
        self._log_lines = []
        self._log_changed = threading.Condition()

    # config

    def config(self):
        return {
            "hosts": [self.domain],
            "listen": [{"module": "c2s", "address": LOOPBACK, "port": self.ports[mode],
                        "tls": mode} for mode in self.LISTENER_MODES],
            "certificates": [{"domain": self.domain, "cert": str(self.cert),
                              "key": str(self.key)}],
            "storage": self.storage,
            "modules": DEFAULT_MODULES,
            "log": {"level": "debug"},
            "admin_socket": str(self.admin_socket),
        }

    def write_config(self):
        if not self.ports:
            self.ports = {mode: free_port() for mode in self.LISTENER_MODES}
        self.config_path.write_text(_yaml(self.config()) + "\n")

    # life cycle

    def start(self, attempts=3):
        """Start parleyd and wait for its ready line. Another process may grab a
        port between free_port() and parleyd's bind: then pick new ports."""
        for attempt in range(attempts):
            self.write_config()
            if self._launch():
                return self
            if "in use" not in self.log() or attempt == attempts - 1:
                raise AssertionError(
                    f"parleyd did not become ready (exit code {self.process.returncode})\n"
                    + self.log())
            self.ports = {}
        return self

    def _launch(self):
        self._ready.clear()
        with self._log_lock, open(self.log_path, "a") as log:
            log.write(f"=== parleyd --config {self.config_path}\n")
        self.process = subprocess.Popen(
            [self.parleyd, "--config", str(self.config_path)], cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", preexec_fn=_die_with_parent)
        self._log_reader = threading.Thread(target=self._copy_log, args=(self.process,),
                                            daemon=True)
        self._log_reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._ready.wait(timeout=0.1):
                return True
            if self.process.poll() is not None:
                self._log_reader.join(timeout=5)
                return self._ready.is_set()
        self.kill()
        raise AssertionError(f"parleyd not ready after {START_TIMEOUT}s\n" + self.log())

    def _copy_log(self, process):
        for line in process.stdout:
            with self._log_lock, open(self.log_path, "a") as log:
                log.write(line)
            with self._log_changed:
                self._log_lines.append(line)
                self._log_changed.notify_all()
            if READY_MARKER in line:
                self._ready.set()

    def log_mark(self):
        """A position in the log, for wait_for_log(..., since=mark)."""
        with self._log_changed:
            return len(self._log_lines)

    def wait_for_log(self, text, since=0, timeout=STEP_TIMEOUT):
        """The first log line after mark `since` that contains text."""
        deadline = time.monotonic() + timeout
        with self._log_changed:
            while True:
                for line in self._log_lines[since:]:
                    if text in line:
                        return line
                since = len(self._log_lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line with {text!r} within {timeout}s")
                self._log_changed.wait(remaining)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait; SIGKILL if it hangs. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"parleyd ignored SIGTERM for {timeout}s\n" + self.log())
        if self._log_reader is not None:
            self._log_reader.join(timeout=5)
        return self.process.returncode

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def remove_files(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self):
        with self._log_lock:
            try:
                return self.log_path.read_text(errors="replace")
            except FileNotFoundError:
                return ""

    # administration

    def ctl(self, *args, timeout=30):
        return subprocess.run([self.parleyctl, "--config", str(self.config_path), *args],
                              cwd=self.workdir, capture_output=True, text=True,
                              timeout=timeout)

    def register(self, user, password):
        result = self.ctl("register", user, self.domain, password)
        if result.returncode != 0:
            raise AssertionError(f"parleyctl register {user} failed ({result.returncode}): "
                                 f"{result.stdout}{result.stderr}")
        return f"{user}@{self.domain}"

    def port(self, mode):
        return self.ports[mode]


class ServerTestCase(unittest.IsolatedAsyncioTestCase):
    """Each test gets a fresh parleyd; its log is printed when the test fails."""

    def setUp(self):
        self.server = Server()
        self.addCleanup(self._stop_server)
        self.server.start()

    def _stop_server(self):
        try:
            code = self.server.stop()
        finally:
            self.server.kill()
        if not self._outcome_ok():
            sys.stderr.write("\n----- parleyd log -----\n" + self.server.log()
                             + f"\n----- end of parleyd log (files kept in {self.server.workdir})"
                             " -----\n")
        elif code not in (0, None):
            sys.stderr.write(self.server.log())
            raise AssertionError(f"parleyd exited with {code} after SIGTERM")
        else:
            self.server.remove_files()

    def _outcome_ok(self):
        # Cleanups run inside their own "test part", where _outcome.success
        # reads True again: the result's failure lists tell the truth.
        result = self._outcome.result
        return not any(getattr(test, "test_case", test) is self
                       for test, _ in result.failures + result.errors)

    async def client(self, user, password=None, **options):
        """A slixmpp client for user (a localpart or a JID), closed at the end."""
        jid = user if "@" in user else f"{user}@{self.server.domain}"
        client = Client(self.server, jid, password or PASSWORDS.get(jid.split("@")[0], "pw"),
                        **options)
        self.addAsyncCleanup(client.close)
        return client

    async def logged_in(self, user, password=None, **options):
        client = await self.client(user, password, **options)
        return await client.login()

    def raw(self, mode="starttls"):
        client = RawClient(self.server, mode)
        self.addCleanup(client.close)
        return client

    def raw_logged_in(self, user, resource="raw", password=None, mode="starttls"):
        client = self.raw(mode)
        client.login(user, password or PASSWORDS.get(user, "pw"), resource)
        return client

    def strophe(self, jid, password, mode="starttls"):
        client = Strophe(self.server, jid, password, mode)
        self.addCleanup(client.close)
        return client

    def register(self, *users):
        """Registers each user with its password from PASSWORDS; returns bare JIDs."""
        return [self.server.register(user, PASSWORDS.get(user, "pw")) for user in users]


# --- slixmpp ------------------------------------------------------------------

class Client(slixmpp.ClientXMPP):
    """slixmpp pointed at the test server, trusting the test CA.

    Every inbound stanza is kept (self.received) so tests can wait for the one
    they expect with wait_for(predicate)."""

    def __init__(self, server, jid, password, *, mode="starttls", plugins=(),
                 mechanism="SCRAM-SHA-256", channel_binding=False):
        """By default the client uses SCRAM-SHA-256 and declares no channel
        binding support ("n" GS2 flag). slixmpp 1.8's own -PLUS only knows
        tls-unique, which TLS 1.3 does not have, and a client that could bind
        but picks a non-PLUS mechanism sends "y", which a server offering
        -PLUS must refuse as a downgrade (RFC 5802 §6). Tests of slixmpp's own
        choice pass mechanism=None, channel_binding=True."""
        super().__init__(jid, password)
        self.ca_certs = str(server.ca_cert)
        self.server_port = server.port(mode)
        self.direct_tls = mode == "direct"
        self.auto_authorize = None
        self.auto_subscribe = False
        sasl = self["feature_mechanisms"]
        if mechanism:
            sasl.use_mech = mechanism
        if not channel_binding:
            sasl.sasl_callback = self._credentials_without_channel_binding(sasl.sasl_callback)
        for plugin in plugins:
            self.register_plugin(plugin)
        self.received = []
        self._arrival = asyncio.Event()
        self.stream_errors = []
        self.auth_failures = []
        self.outcome = asyncio.get_event_loop().create_future()
        self.add_filter("in", self._keep)
        self.add_event_handler("session_start", self._settle("session"))
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", self._settle("failed_auth"))
        self.add_event_handler("disconnected", self._settle("disconnected"))
        self.add_event_handler("connection_failed", self._settle("connection_failed"))
        self.add_event_handler("stream_error", self._on_stream_error)

    @staticmethod
    def _credentials_without_channel_binding(credentials):
        def without(required, optional):
            values = credentials(required, optional)
            values.pop("channel_binding", None)
            return values
        return without

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

    def _on_failed_auth(self, failure):
        self.auth_failures.append(failure)  # slixmpp then tries its next mechanism

    def _on_stream_error(self, error):
        self.stream_errors.append(error)
        self._arrival.set()

    def start_connect(self):
        self.connect(address=(self.boundjid.domain, self.server_port), use_ssl=self.direct_tls,
                     force_starttls=not self.direct_tls, disable_starttls=self.direct_tls)

    async def login(self, timeout=STEP_TIMEOUT):
        """Connect and wait until the session starts; raises otherwise."""
        outcome = await self.try_login(timeout)
        if outcome != "session":
            raise AssertionError(f"{self.boundjid} login ended with {outcome}")
        return self

    async def try_login(self, timeout=STEP_TIMEOUT):
        self.start_connect()
        return await asyncio.wait_for(asyncio.shield(self.outcome), timeout)

    @property
    def mechanism(self):
        mech = self["feature_mechanisms"].mech
        return None if mech is None else mech.name

    async def wait_for(self, predicate, timeout=STEP_TIMEOUT, start=0):
        """The first stanza received (from index start on) that satisfies predicate."""
        deadline = asyncio.get_event_loop().time() + timeout
        index = start
        while True:
            while index < len(self.received):
                stanza = self.received[index]
                index += 1
                if predicate(stanza):
                    return stanza
            remaining = deadline - asyncio.get_event_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.boundjid}: no matching stanza within {timeout}s; received:\n"
                    + "\n".join(str(s) for s in self.received[start:]))
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def wait_message(self, body=None, sender=None, timeout=STEP_TIMEOUT, start=0):
        def matches(stanza):
            return (stanza.name == "message" and stanza["body"] != ""
                    and (body is None or stanza["body"] == body)
                    and (sender is None or stanza["from"] == slixmpp.JID(sender)
                         or stanza["from"].bare == sender))
        return await self.wait_for(matches, timeout, start)

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
        return self.stream_errors[0]

    async def ping_server(self, timeout=STEP_TIMEOUT):
        """XEP-0199 ping to our server. The server handles one session's stanzas
        in order, so its answer proves everything sent before was routed."""
        ping = self.Iq()
        ping["type"] = "get"
        ping["to"] = self.boundjid.domain
        ping.xml.append(ET.Element("{urn:xmpp:ping}ping"))
        return await ping.send(timeout=timeout)

    async def close(self, timeout=STEP_TIMEOUT):
        if self.transport is None:
            return
        waiter = self.disconnected
        self.disconnect()
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            self.abort()


# --- a raw XMPP client over a plain socket, for input no real client would send

class StreamClosed(Exception):
    pass


class RawClient:
    """Speaks XMPP by hand so tests can send anything, byte for byte."""

    def __init__(self, server, mode="starttls", timeout=STEP_TIMEOUT):
        self.server = server
        self.domain = server.domain
        self.timeout = timeout
        self.sock = socket.create_connection((LOOPBACK, server.port(mode)), timeout=timeout)
        self.tls = None
        if mode == "direct":
            self._wrap_tls(alpn=["xmpp-client"])
        self.pending = []
        self.skipped = []  # what wait_for passed over, for tests to inspect
        self.closed = False
        self.stream_attributes = {}
        self._reset_parser()

    # transport

    def _tls_context(self):
        context = ssl.create_default_context(cafile=str(self.server.ca_cert))
        context.check_hostname = True
        return context

    def _wrap_tls(self, alpn=None):
        context = self._tls_context()
        if alpn:
            context.set_alpn_protocols(alpn)
        self.sock = context.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = self.sock

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _reset_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0

    def _read_some(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as error:
            self.closed = True
            raise StreamClosed(str(error)) from error
        if not data:
            self.closed = True
            raise StreamClosed("connection closed by the server")
        self._feed(data)
        return True

    def _feed(self, data):
        self.parser.feed(data)
        for event, element in self.parser.read_events():
            if event == "start":
                self.depth += 1
                if self.depth == 1:
                    self.stream_attributes = dict(element.attrib)
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.pending.append(element)
                elif self.depth == 0:
                    self.pending.append(element)  # </stream:stream>

    def recv(self, timeout=None):
        """The next top-level element; the stream's own end tag is returned as
        the <stream:stream/> element itself."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"nothing received within {timeout}s")
            self._read_some(remaining)
        return self.pending.pop(0)

    def wait_for(self, predicate, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                element = self.recv(max(remaining, 0.001))
            except AssertionError:
                raise AssertionError(f"no matching element within {timeout}s; got:\n"
                                     + "\n".join(to_text(e) for e in seen)) from None
            if predicate(element):
                return element
            seen.append(element)
            self.skipped.append(element)

    def readable(self):
        if self.pending:
            return True
        if self.tls is not None and self.tls.pending():
            return True
        ready, _, _ = select.select([self.sock], [], [], 0)
        return bool(ready)

    # stream

    def open_stream(self):
        self._reset_parser()
        self.send(f"<?xml version='1.0'?><stream:stream to='{self.domain}' version='1.0' "
                  "xml:lang='en' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams'>")
        features = self.recv()
        if features.tag != qname(NS_STREAM, "features"):
            raise AssertionError("expected stream features, got " + to_text(features))
        return features

    def starttls(self):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        answer = self.recv()
        if answer.tag != qname(NS_TLS, "proceed"):
            raise AssertionError("STARTTLS refused: " + to_text(answer))
        self._wrap_tls()
        return self.open_stream()

    @staticmethod
    def mechanisms(features):
        node = features.find(qname(NS_SASL, "mechanisms"))
        if node is None:
            return []
        return [m.text for m in node.findall(qname(NS_SASL, "mechanism"))]

    def auth_plain(self, user, password):
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        return self.recv()

    def auth_scram(self, user, password, hash_name="sha256", channel_binding=False):
        """SCRAM-SHA-* (RFC 5802 / 7677); with channel_binding, the -PLUS form
        bound with tls-server-end-point (RFC 5929: the certificate's SHA-256
        hash, our test certificates being signed with ecdsa-with-SHA256).
        Returns the final <success/> or <failure/>."""
        mechanism = "SCRAM-" + {"sha1": "SHA-1", "sha256": "SHA-256"}[hash_name]
        if channel_binding:
            mechanism += "-PLUS"
            gs2_header = b"p=tls-server-end-point,,"
            binding_data = hashlib.sha256(self.tls.getpeercert(binary_form=True)).digest()
        else:
            gs2_header = b"n,,"
            binding_data = b""
        client_nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n={user},r={client_nonce}"
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>"
                  + base64.b64encode(gs2_header + first_bare.encode()).decode() + "</auth>")
        challenge = self.recv()
        if challenge.tag != qname(NS_SASL, "challenge"):
            return challenge
        server_first = base64.b64decode(challenge.text or "").decode()
        fields = dict(part.split("=", 1) for part in server_first.split(","))
        if not fields["r"].startswith(client_nonce):
            raise AssertionError("server nonce does not extend ours: " + server_first)
        salted = hashlib.pbkdf2_hmac(hash_name, password.encode(),
                                     base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.digest(salted, b"Client Key", hash_name)
        stored_key = hashlib.new(hash_name, client_key).digest()
        final_bare = ("c=" + base64.b64encode(gs2_header + binding_data).decode()
                      + ",r=" + fields["r"])
        auth_message = f"{first_bare},{server_first},{final_bare}".encode()
        signature = hmac.digest(stored_key, auth_message, hash_name)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.send(f"<response xmlns='{NS_SASL}'>"
                  + base64.b64encode(f"{final_bare},p={base64.b64encode(proof).decode()}"
                                     .encode()).decode() + "</response>")
        outcome = self.recv()
        if outcome.tag == qname(NS_SASL, "success"):
            server_key = hmac.digest(salted, b"Server Key", hash_name)
            expected = base64.b64encode(hmac.digest(server_key, auth_message, hash_name))
            final = base64.b64decode(outcome.text or "").decode()
            if final != "v=" + expected.decode():
                raise AssertionError("server signature does not verify: " + final)
        return outcome

    def bind(self, resource):
        self.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
                  f"<resource>{resource}</resource></bind></iq>")
        answer = self.wait_for(lambda e: e.tag == qname(NS_CLIENT, "iq")
                               and e.get("id") == "bind1")
        jid = answer.find(f"{qname(NS_BIND, 'bind')}/{qname(NS_BIND, 'jid')}")
        if answer.get("type") != "result" or jid is None:
            raise AssertionError("bind failed: " + to_text(answer))
        self.jid = jid.text
        return self.jid

    def login(self, user, password, resource="raw"):
        """The whole handshake: stream, STARTTLS (unless direct), PLAIN, bind."""
        self.open_stream()
        if self.tls is None:
            self.starttls()
        answer = self.auth_plain(user, password)
        if answer.tag != qname(NS_SASL, "success"):
            raise AssertionError("authentication failed: " + to_text(answer))
        self.open_stream()
        return self.bind(resource)

    def iq(self, payload, type_="get", to=None, timeout=None):
        ident = uuid.uuid4().hex
        to_attr = f" to='{to}'" if to else ""
        self.send(f"<iq type='{type_}' id='{ident}'{to_attr}>{payload}</iq>")
        return self.wait_for(lambda e: e.tag == qname(NS_CLIENT, "iq")
                             and e.get("id") == ident
                             and e.get("type") in ("result", "error"), timeout)

    def message(self, to, body):
        self.send(f"<message to='{to}' type='chat'><body>{body}</body></message>")

    def presence(self, priority=None):
        inner = f"<priority>{priority}</priority>" if priority is not None else ""
        self.send(f"<presence>{inner}</presence>")

    def wait_message(self, body, timeout=None):
        return self.wait_for(lambda e: e.tag == qname(NS_CLIENT, "message")
                             and e.findtext(qname(NS_CLIENT, "body")) == body, timeout)

    def stream_error(self, timeout=None):
        """Waits for <stream:error/>, returns its condition, then checks the
        server closes the stream or the connection."""
        error = self.wait_for(lambda e: e.tag in (qname(NS_STREAM, "error"),
                                                  qname(NS_STREAM, "stream")), timeout)
        if error.tag != qname(NS_STREAM, "error"):
            raise AssertionError("stream closed without a stream error")
        condition = error_condition(error, NS_STREAM_ERRORS)
        self.expect_closed(timeout)
        return condition

    def expect_closed(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"server did not close the stream within {timeout}s")
                element = self.recv(remaining)
                if element.tag == qname(NS_STREAM, "stream"):
                    return
        except StreamClosed:
            return

    def close(self):
        try:
            if not self.closed:
                self.send("</stream:stream>")
        except OSError:
            pass
        self.sock.close()


# --- libstrophe -----------------------------------------------------------------

class Strophe:
    """The strophe_client CLI: stdin lines are raw XML to send; stdout lines are
    CONNECTED <jid>, STANZA <xml>, STREAM-ERROR <condition>, DISCONNECTED, ..."""

    def __init__(self, server, jid, password, mode="starttls"):
        self.lines = queue.Queue()
        self.transcript = []
        self.log_path = server.workdir / f"strophe-{uuid.uuid4().hex[:8]}.log"
        command = [binary("STROPHE_CLIENT"), "--jid", jid, "--password", password,
                   "--host", LOOPBACK, "--port", str(server.port(mode)), "--tls", mode,
                   "--cafile", str(server.ca_cert), "--timeout", "60"]
        env = dict(os.environ)
        env["LSAN_OPTIONS"] = f"suppressions={Path(__file__).with_name('lsan.supp')}"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, env=env,
                                            text=True, bufsize=1,
                                            preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, predicate, timeout=STEP_TIMEOUT):
        """The first output line satisfying predicate (a substring or a function)."""
        if isinstance(predicate, str):
            needle = predicate
            predicate = lambda line: needle in line  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)
                break
            self.transcript.append(line)
            if predicate(line):
                return line
        raise AssertionError("strophe_client: expected output not seen; transcript:\n"
                             + "\n".join(self.transcript) + "\nlibstrophe log:\n"
                             + self.log_path.read_text(errors="replace")[-20000:])

    async def wait(self, predicate, timeout=STEP_TIMEOUT):
        """expect() for async tests: the event loop keeps running meanwhile,
        so slixmpp clients in the same test can send what is awaited."""
        return await asyncio.to_thread(self.expect, predicate, timeout)

    def send(self, xml):
        self.process.stdin.write(xml.replace("\n", " ") + "\n")
        self.process.stdin.flush()

    def close(self, timeout=STEP_TIMEOUT):
        """Closes stdin (the client then ends its stream) and waits for exit."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode
