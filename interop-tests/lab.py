"""The federation lab: everything a server-to-server test needs around parleyd.

    from lab import Lab, ProsodyClient

    with Lab() as lab:          # in a TestCase: self.lab = Lab(); self.addCleanup(self.lab.close)
        prosody = lab.prosody("prosody.test")  # own 127.0.0.x, certificate, DNS records
        lab.dns.add_domain("parley.test", "127.0.0.1",
                           srv=[(0, 5, parley_s2s_port, "parley.test")])
        lab.dns.start()                        # (re)start after changing records
        cert, key = lab.issue_certificate("parley.test")
        prosody.start()
        prosody.register("juliet", "secret")
        # parleyd's config: s2s.dns_servers = [lab.dns_server], s2s.ca_file = lab.ca.cert
        client = ProsodyClient(prosody, "juliet", "secret")
        await client.login()                   # slixmpp on Prosody's c2s

Pieces (each usable alone):

- CertificateAuthority(directory): a throwaway CA (ca.crt, ca.key);
  issue(domain, client_auth=False) -> (cert, key) with SAN DNS:D and DNS:*.D,
  EKU serverAuth (plus clientAuth only when asked: the legacy case).
- DnsServer(directory): unbound, authoritative for "test." only, on
  127.0.0.53 and a free port (UDP and TCP). add_domain(domain, address,
  srv=[(priority, weight, port, target)], srvs=[...], client_srv=[...],
  a=[...], aaaa=[...]) publishes _xmpp-server._tcp (srv), _xmpps-server._tcp
  (srvs), _xmpp-client._tcp (client_srv) and the domain's A/AAAA records;
  add_host(name, *addresses) for SRV targets; remove(name); start() or
  restart() applies the records (same port). server is "127.0.0.53:PORT"
  (c-ares, parleyd's config), forward is "127.0.0.53@PORT" (unbound style),
  query(name, type) asks it with dnspython. Records carry `ttl` (default 1 s,
  so a restart with new records is seen almost at once by caching resolvers).
- Prosody(lab, domain, ...): Debian's Prosody 0.12 on its own loopback address
  (127.0.0.x, picked so 5222/5223/5269/5270 are free), standard ports, own
  config, data, certificates and log in the lab directory; resolves through
  the lab DNS (lua-unbound) and trusts the lab CA. Options: secure_auth,
  insecure_domains, secure_domains, direct_tls (s2s_direct_tls_ports),
  muc (Component "conference.D"), extra_config (raw Lua appended).
  start(), stop(), restart(), register(user, password), log(), wait_for_log(text),
  issue_certificate(client_auth=False, names=None), install_certificate(cert, key).
  lab.prosody(domain, **options) also publishes its DNS records (A, and SRV for
  _xmpp-server, _xmpps-server when direct_tls, _xmpp-client) and tracks it for cleanup.
- ProsodyClient(prosody, user, password, via_dns=False): harness.Client (slixmpp)
  logged in to that Prosody's c2s; via_dns=True finds the address with the
  lab DNS's _xmpp-client SRV record instead of the known address.

Everything listens on 127.0.0.x only and is stopped by PID; a child dies with
the test process (PR_SET_PDEATHSIG). Run with /usr/bin/python3 (slixmpp,
dnspython). Never run `prosody --version`: it starts the system's server.
"""

import ctypes
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

import harness

DNS_ADDRESS = "127.0.0.53"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
PROSODY_PORTS = {"c2s": 5222, "c2s_direct_tls": 5223, "s2s": 5269, "s2s_direct_tls": 5270}

_PR_SET_PDEATHSIG = 1


def _system_program(name):
    """unbound lives in /usr/sbin, which a non-root PATH often lacks."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise AssertionError(f"{name} is not installed (scripts/install-deps.sh test)")
    return found


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _port_free(address, port, kind):
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address, port))
        except OSError:
            return False
    return True


def free_udp_tcp_port(address):
    """A port free for both UDP and TCP on address."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = udp.getsockname()[1]
        if _port_free(address, port, socket.SOCK_STREAM):
            return port
    raise RuntimeError(f"no free UDP+TCP port on {address}")


_taken_addresses = set()


def free_loopback_address(ports=tuple(PROSODY_PORTS.values())):
    """A 127.0.0.x (x in 100..249) where every one of ports is free for TCP,
    not handed out before by this process. Parallel test processes pick at
    random among free ones, so only a bind between the check and Prosody's
    start could collide."""
    candidates = [f"127.0.0.{n}" for n in range(100, 250)]
    random.shuffle(candidates)
    for address in candidates:
        if address in _taken_addresses:
            continue
        if all(_port_free(address, port, socket.SOCK_STREAM) for port in ports):
            _taken_addresses.add(address)
            return address
    raise RuntimeError("no free loopback address for a peer server")


class _ChildLog:
    """Copies a child's merged stdout/stderr to a file and lets tests wait
    for a line (event-based, with a timeout)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lines = []
        self._changed = threading.Condition()
        self._thread = None

    def follow(self, process):
        self._thread = threading.Thread(target=self._copy, args=(process,), daemon=True)
        self._thread.start()

    def _copy(self, process):
        with open(self.path, "a") as out:
            for line in process.stdout:
                out.write(line)
                out.flush()
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def join(self, process=None):
        """Waits for the copy to end; closes process's pipe."""
        if self._thread is not None:
            self._thread.join(timeout=5)
        if process is not None and process.stdout is not None:
            process.stdout.close()

    def mark(self):
        with self._changed:
            return len(self._lines)

    def wait_for(self, text, since=0, timeout=harness.STEP_TIMEOUT, process=None):
        """The first line from mark `since` on containing text; AssertionError
        after timeout, or at once when process has exited without it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[since:]:
                    if text in line:
                        return line
                since = len(self._lines)
                if process is not None and process.poll() is not None and not (
                        self._thread and self._thread.is_alive()):
                    raise AssertionError(f"exited ({process.returncode}) before logging {text!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line with {text!r} within {timeout}s")
                self._changed.wait(min(remaining, 0.5))

    def text(self):
        try:
            return self.path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _stop_process(process, timeout=STOP_TIMEOUT):
    """SIGTERM, then SIGKILL if it hangs; returns the exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    return process.returncode


# --- certificates -------------------------------------------------------------

_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


class CertificateAuthority:
    """A throwaway CA in directory (GUIDE §11)."""

    def __init__(self, directory, name="parley lab ca"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert = self.directory / "ca.crt"
        self.key = self.directory / "ca.key"
        self._openssl("req", "-x509", "-new", "-nodes", *_EC_KEY, "-keyout", "ca.key",
                      "-out", "ca.crt", "-days", "30", "-subj", f"/CN={name}",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def _openssl(self, *args):
        result = subprocess.run(["openssl", *args], cwd=self.directory, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)}: {result.stderr}")

    def issue(self, domain, client_auth=False, names=None, days=30):
        """(cert, key) for domain: SAN DNS:D and DNS:*.D (or DNS:n for each of
        names), EKU serverAuth, plus clientAuth when client_auth. Issuing again
        replaces the files."""
        names = names or [domain, f"*.{domain}"]
        usage = "serverAuth,clientAuth" if client_auth else "serverAuth"
        ext = self.directory / f"{domain}.ext"
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                       f"extendedKeyUsage={usage}\n"
                       "basicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature\n")
        self._openssl("req", "-new", "-nodes", *_EC_KEY, "-keyout", f"{domain}.key",
                      "-out", f"{domain}.csr", "-subj", f"/CN={domain}")
        self._openssl("x509", "-req", "-in", f"{domain}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", str(days), "-extfile", ext.name,
                      "-out", f"{domain}.crt")
        return self.directory / f"{domain}.crt", self.directory / f"{domain}.key"


# --- DNS ----------------------------------------------------------------------

class DnsServer:
    """unbound serving the lab's test. zone on 127.0.0.53 (GUIDE §11)."""

    def __init__(self, directory, address=DNS_ADDRESS, ttl=1):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.ttl = ttl
        self.port = None
        self.process = None
        self._records = {}  # owner name -> list of "TYPE DATA"
        self._log = _ChildLog(self.directory / "unbound.log")

    # records

    def add_record(self, name, rtype, data, ttl=None):
        """One record, e.g. add_record("x.test", "TXT", '"hello"')."""
        owner = name.rstrip(".").lower() + "."
        self._records.setdefault(owner, []).append(
            f"{owner} {self.ttl if ttl is None else ttl} IN {rtype} {data}")

    def add_host(self, name, *addresses):
        for address in addresses:
            self.add_record(name, "AAAA" if ":" in address else "A", address)

    def add_srv(self, service, domain, records):
        """records: [(priority, weight, port, target)]; target "." means no service."""
        for priority, weight, port, target in records:
            target = "." if target == "." else target.rstrip(".") + "."
            self.add_record(f"{service}._tcp.{domain}", "SRV",
                            f"{priority} {weight} {port} {target}")

    def add_domain(self, domain, address=None, srv=(), srvs=(), client_srv=(), a=(), aaaa=()):
        """The records of an XMPP domain: its own address (A or AAAA by form)
        plus a/aaaa, and SRV sets for _xmpp-server (srv), _xmpps-server (srvs)
        and _xmpp-client (client_srv)."""
        addresses = ([address] if address else []) + list(a) + list(aaaa)
        if addresses:
            self.add_host(domain, *addresses)
        self.add_srv("_xmpp-server", domain, srv)
        self.add_srv("_xmpps-server", domain, srvs)
        self.add_srv("_xmpp-client", domain, client_srv)

    def remove(self, name):
        """Every record of name and of its _service._tcp names."""
        owner = name.rstrip(".").lower() + "."
        for key in list(self._records):
            if key == owner or (key.startswith("_") and key.endswith("._tcp." + owner)):
                del self._records[key]

    def records(self):
        return [line for lines in self._records.values() for line in lines]

    # addresses for configs

    @property
    def server(self):
        """c-ares form, for parleyd's config: "127.0.0.53:PORT"."""
        return f"{self.address}:{self.port}"

    @property
    def forward(self):
        """unbound/Prosody form: "127.0.0.53@PORT"."""
        return f"{self.address}@{self.port}"

    # life cycle

    def _write_config(self):
        lines = [
            "server:",
            f"  interface: {self.address}@{self.port}",
            f"  port: {self.port}",
            "  access-control: 127.0.0.0/8 allow",
            '  chroot: ""', '  username: ""', f'  directory: "{self.directory}"',
            f'  pidfile: "{self.directory / "unbound.pid"}"',
            "  do-daemonize: no", "  use-syslog: no", '  logfile: ""', "  verbosity: 1",
            "  num-threads: 1", "  do-ip6: no",
            "  do-not-query-address: 0.0.0.0/0", '  module-config: "iterator"',
            '  local-zone: "." refuse', '  local-zone: "test." static',
        ]
        lines += [f'  local-data: "{record}"' for record in self.records()]
        lines += ["remote-control:", "  control-enable: no"]
        path = self.directory / "unbound.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, attempts=3):
        """Start (or restart, on the same port) with the current records and
        wait until it answers."""
        self.stop()
        for attempt in range(attempts):
            if self.port is None:
                self.port = free_udp_tcp_port(self.address)
            config = self._write_config()
            check = subprocess.run([_system_program("unbound-checkconf"), str(config)],
                                   capture_output=True, text=True)
            if check.returncode != 0:
                raise AssertionError(f"unbound config refused: {check.stdout}{check.stderr}")
            self.process = subprocess.Popen(
                [_system_program("unbound"), "-d", "-c", str(config)], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                preexec_fn=_die_with_parent)
            self._log.follow(self.process)
            if self._wait_until_answering():
                return self
            self.stop()
            if attempt < attempts - 1:
                self.port = None  # someone took the port: pick another
        raise AssertionError("unbound did not start:\n" + self.log())

    restart = start

    def _wait_until_answering(self):
        """Probes with a query (one datagram per 100 ms wait) until an answer
        comes, unbound exits, or START_TIMEOUT passes."""
        probe = dns.message.make_query("test.", dns.rdatatype.SOA)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                dns.query.udp(probe, self.address, port=self.port, timeout=0.1)
                return True
            except (dns.exception.Timeout, ConnectionRefusedError, OSError):
                continue
        return False

    def stop(self):
        if self.process is not None:
            _stop_process(self.process)
            self._log.join(self.process)
            self.process = None

    def log(self):
        return self._log.text()

    def query(self, name, rtype="A", timeout=2.0):
        """Asks the lab DNS; returns (rcode text, [record text])."""
        request = dns.message.make_query(name, rtype)
        answer = dns.query.udp(request, self.address, port=self.port, timeout=timeout)
        records = [item.to_text() for rrset in answer.answer for item in rrset]
        return dns.rcode.to_text(answer.rcode()), records


# --- Prosody ----------------------------------------------------------------------

def _lua_string(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_list(values):
    return "{ " + "; ".join(_lua_string(v) for v in values) + " }"


class Prosody:
    """Debian's Prosody 0.12 as a federation peer (GUIDE §11)."""

    READY_SERVICES = ("c2s", "s2s")

    def __init__(self, lab, domain, *, address=None, secure_auth=True, insecure_domains=(),
                 secure_domains=(), direct_tls=True, muc=True, extra_config=""):
        self.lab = lab
        self.domain = domain
        self.address = address or free_loopback_address()
        self.secure_auth = secure_auth
        self.insecure_domains = list(insecure_domains)
        self.secure_domains = list(secure_domains)
        self.direct_tls = direct_tls
        self.muc_domain = f"conference.{domain}" if muc else None
        self.extra_config = extra_config
        self.directory = Path(lab.directory) / f"prosody-{domain}"
        self.data_path = self.directory / "data"
        self.certificates = self.directory / "certs"
        self.config_path = self.directory / "prosody.cfg.lua"
        for path in (self.data_path, self.certificates):
            path.mkdir(parents=True, exist_ok=True)
        self.issue_certificate()
        self.process = None
        self._log = _ChildLog(self.directory / "prosody.log")
        self.ports = dict(PROSODY_PORTS)

    @property
    def ca_cert(self):
        return self.lab.ca.cert

    def port(self, mode):
        """harness.Client's view: c2s port for "starttls" or "direct"."""
        return self.ports["c2s_direct_tls" if mode == "direct" else "c2s"]

    def issue_certificate(self, client_auth=False, names=None):
        """A fresh certificate from the lab CA (SAN D and *.D, or names)
        where Prosody finds it; applies at the next start."""
        self.install_certificate(*self.lab.ca.issue(self.domain, client_auth=client_auth,
                                                    names=names))

    def install_certificate(self, cert, key):
        """Any certificate for the domain, e.g. one from another CA
        (CertificateAuthority(lab.directory / "rogue").issue(domain)) to test
        an untrusted peer, or issue(domain, names=["other.test"]) for a wrong name."""
        shutil.copy(cert, self.certificates / f"{self.domain}.crt")
        shutil.copy(key, self.certificates / f"{self.domain}.key")

    def config(self):
        dns_server = self.lab.dns
        lines = [
            "run_as_root = true",
            f"pidfile = {_lua_string(self.directory / 'prosody.pid')}",
            f"data_path = {_lua_string(self.data_path)}",
            f"admin_socket = {_lua_string(self.directory / 'prosody.sock')}",
            f"certificates = {_lua_string(self.certificates)}",
            'log = { { levels = { min = "debug" }, to = "console" } }',
            f"interfaces = {_lua_list([self.address])}",
            f"local_interfaces = {_lua_list([self.address])}",
            f"c2s_ports = {{ {self.ports['c2s']} }}",
            f"c2s_direct_tls_ports = {{ {self.ports['c2s_direct_tls']} }}",
            f"s2s_ports = {{ {self.ports['s2s']} }}",
            ("s2s_direct_tls_ports = { %d }" % self.ports["s2s_direct_tls"]
             if self.direct_tls else "s2s_direct_tls_ports = { }"),
            "http_ports = { }", "https_ports = { }",
            "modules_enabled = { \"roster\"; \"saslauth\"; \"tls\"; \"dialback\"; \"disco\";"
            " \"ping\"; \"version\"; \"time\"; \"private\"; \"vcard\"; \"posix\" }",
            "authentication = \"internal_hashed\"",
            "storage = \"internal\"",
            "allow_registration = false",
            "c2s_require_encryption = true",
            "s2s_require_encryption = true",
            f"s2s_secure_auth = {'true' if self.secure_auth else 'false'}",
            f"s2s_insecure_domains = {_lua_list(self.insecure_domains)}",
            f"s2s_secure_domains = {_lua_list(self.secure_domains)}",
            f"ssl = {{ cafile = {_lua_string(self.lab.ca.cert)} }}",
            "unbound = { resolvconf = false; hoststxt = false;"
            f" forward = {_lua_list([dns_server.forward])};"
            ' options = { ["local-zone:"] = "test. transparent" } }',
            self.extra_config,
            f"VirtualHost {_lua_string(self.domain)}",
        ]
        if self.muc_domain:
            lines.append(f"Component {_lua_string(self.muc_domain)} \"muc\"")
        return "\n".join(lines) + "\n"

    def publish_dns(self):
        """A for the domain (and its MUC), SRV for _xmpp-server, _xmpps-server
        (when direct_tls) and _xmpp-client, all on this Prosody."""
        dns_server = self.lab.dns
        dns_server.remove(self.domain)
        dns_server.add_domain(
            self.domain, self.address,
            srv=[(0, 5, self.ports["s2s"], self.domain)],
            srvs=[(0, 5, self.ports["s2s_direct_tls"], self.domain)] if self.direct_tls else [],
            client_srv=[(0, 5, self.ports["c2s"], self.domain)])
        if self.muc_domain:
            dns_server.remove(self.muc_domain)
            dns_server.add_domain(self.muc_domain, self.address,
                                  srv=[(0, 5, self.ports["s2s"], self.domain)])

    # life cycle

    def start(self, timeout=START_TIMEOUT):
        """Start in the foreground and wait until its c2s and s2s listeners
        are active and c2s accepts a connection."""
        self.config_path.write_text(self.config())
        mark = self._log.mark()
        self.process = subprocess.Popen(
            [_system_program("prosody"), "-F", "--config", str(self.config_path)],
            cwd=self.directory,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", preexec_fn=_die_with_parent)
        self._log.follow(self.process)
        try:
            services = list(self.READY_SERVICES) + (["s2s_direct_tls"] if self.direct_tls else [])
            for service in services:
                self._log.wait_for(f"Activated service '{service}'", since=mark, timeout=timeout,
                                   process=self.process)
            with socket.create_connection((self.address, self.ports["c2s"]), timeout=timeout):
                pass
        except (AssertionError, OSError) as error:
            self.kill()
            raise AssertionError(f"Prosody {self.domain} did not start: {error}\n" + self.log())
        return self

    def stop(self):
        """SIGTERM and wait; returns the exit code (0 on a clean shutdown)."""
        code = _stop_process(self.process)
        self._log.join(self.process)
        return code

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
        self._log.join(self.process)

    def restart(self):
        self.stop()
        return self.start()

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    # accounts and logs

    def prosodyctl(self, *args, timeout=30):
        command = [_system_program("prosodyctl"), "--config", str(self.config_path), *args]
        return subprocess.run(command, cwd=self.directory, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def register(self, user, password):
        """Creates user@domain (works whether or not Prosody runs); returns the JID."""
        if not self.config_path.exists():
            self.config_path.write_text(self.config())
        result = self.prosodyctl("register", user, self.domain, password)
        if result.returncode != 0:
            raise AssertionError(f"prosodyctl register {user}@{self.domain} failed "
                                 f"({result.returncode}): {result.stdout}{result.stderr}")
        return f"{user}@{self.domain}"

    def log(self):
        return self._log.text()

    def log_mark(self):
        return self._log.mark()

    def wait_for_log(self, text, since=0, timeout=harness.STEP_TIMEOUT):
        return self._log.wait_for(text, since=since, timeout=timeout)


class ProsodyClient(harness.Client):
    """slixmpp (harness.Client: received stanzas, wait_for, wait_message, close)
    logged in to a lab Prosody as user (a localpart or a JID), trusting the lab
    CA and checking the certificate for the Prosody's domain. Prosody 0.12
    offers SCRAM-SHA-1 only."""

    def __init__(self, prosody, user, password, *, mode="starttls", plugins=(),
                 mechanism="SCRAM-SHA-1", via_dns=False):
        jid = user if "@" in user else f"{user}@{prosody.domain}"
        super().__init__(prosody, jid, password, mode=mode, plugins=plugins, mechanism=mechanism)
        self.peer_address = prosody.address
        if via_dns:
            self.peer_address, self.server_port = self._from_lab_dns(prosody.lab.dns,
                                                                     prosody.domain)

    @staticmethod
    def _from_lab_dns(dns_server, domain):
        rcode, records = dns_server.query(f"_xmpp-client._tcp.{domain}", "SRV")
        if rcode != "NOERROR" or not records:
            raise AssertionError(f"no _xmpp-client SRV record for {domain}: {rcode}")
        _, _, port, target = records[0].split()
        rcode, addresses = dns_server.query(target, "A")
        if rcode != "NOERROR" or not addresses:
            raise AssertionError(f"no A record for {target}: {rcode}")
        return addresses[0], int(port)

    async def get_dns_records(self, domain, port=None):
        return [(domain, self.peer_address, self.server_port)]

    def start_connect(self):
        self.connect(address=(self.peer_address, self.server_port), use_ssl=self.direct_tls,
                     force_starttls=not self.direct_tls, disable_starttls=self.direct_tls)


# --- the lab ---------------------------------------------------------------------------

class Lab:
    """A temp dir holding a CA, a DNS server and any number of Prosody peers.
    close() stops everything; the files stay when keep_files is set (a test
    sets it on failure to print logs), else they are removed."""

    def __init__(self, ttl=1):
        self.directory = Path(tempfile.mkdtemp(prefix="parley-lab-"))
        self.ca = CertificateAuthority(self.directory / "ca")
        self.dns = DnsServer(self.directory / "dns", ttl=ttl)
        self.peers = []
        self.keep_files = False

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.keep_files = True
        self.close()

    def issue_certificate(self, domain, client_auth=False, names=None):
        """(cert, key) paths signed by the lab CA; see CertificateAuthority.issue."""
        return self.ca.issue(domain, client_auth=client_auth, names=names)

    @property
    def dns_server(self):
        """The lab DNS for parleyd's s2s.dns_servers: "127.0.0.53:PORT"."""
        return self.dns.server

    def prosody(self, domain, **options):
        """A Prosody for domain with its DNS records published (start the DNS
        or restart it afterwards: lab.dns.start())."""
        peer = Prosody(self, domain, **options)
        peer.publish_dns()
        self.peers.append(peer)
        return peer

    def logs(self):
        """Every log of the lab, for a failing test's report."""
        parts = [f"----- unbound -----\n{self.dns.log()}"]
        parts += [f"----- prosody {peer.domain} ({peer.address}) -----\n{peer.log()}"
                  for peer in self.peers]
        return "\n".join(parts)

    def close(self):
        for peer in self.peers:
            try:
                peer.stop()
            finally:
                peer.kill()
        self.dns.stop()
        if self.keep_files:
            return
        shutil.rmtree(self.directory, ignore_errors=True)


__all__ = ["Lab", "CertificateAuthority", "DnsServer", "Prosody", "ProsodyClient",
           "free_loopback_address", "free_udp_tcp_port", "DNS_ADDRESS"]
