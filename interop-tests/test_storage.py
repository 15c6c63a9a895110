"""Storage end to end: parleyd on MariaDB through a database outage, and
`parleyctl migrate` from SQLite to MariaDB with a thousand users.

MariaDB (Debian mariadb-server) is started by each test in its own temp data
directory on a free loopback port and stopped by its PID.
"""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path

import harness
from harness import (DOMAIN, LOOPBACK, NS_CLIENT, NS_ROSTER, NS_SASL, NS_STANZA_ERRORS,
                     RawClient, Server, qname, stanza_error_condition, to_text)

MARIADB_START_TIMEOUT = 60.0
NS_PING = "urn:xmpp:ping"
NS_DELAY = "urn:xmpp:delay"
MYSQL_SHARE = Path("/usr/share/mysql")


class Mariadb:
    """A throwaway MariaDB server: bootstrapped with only the system tables
    (about a second), listening on 127.0.0.1 only, stopped by its PID."""

    def __init__(self):
        for program in ("mariadbd", "mariadb"):
            if shutil.which(program) is None:
                raise unittest.SkipTest(f"{program} is not installed (Debian mariadb-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="parley-mariadb-"))
        self.socket = self.dir / "server.sock"
        self.log_path = self.dir / "server.log"
        self.process = None
        (self.dir / "data").mkdir()
        script = ("CREATE DATABASE IF NOT EXISTS mysql;\nUSE mysql;\nSET @auth_root_socket=NULL;\n"
                  + "\n".join((MYSQL_SHARE / name).read_text()
                              for name in ("mysql_system_tables.sql",
                                           "mysql_performance_tables.sql",
                                           "mysql_system_tables_data.sql")))
        bootstrap = subprocess.run(
            ["mariadbd", "--no-defaults", "--bootstrap", "--silent-startup",
             f"--datadir={self.dir / 'data'}", "--log-warnings=0", "--user=root",
             "--innodb-log-file-size=8M"],
            input=script, capture_output=True, text=True, timeout=120)
        if bootstrap.returncode != 0:
            raise AssertionError("mariadbd --bootstrap failed:\n" + bootstrap.stdout + bootstrap.stderr)
        self.port = harness.free_port()
        self.start()

    def start(self):
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.dir / 'data'}",
             f"--socket={self.socket}", f"--pid-file={self.dir / 'server.pid'}",
             f"--port={self.port}", f"--bind-address={LOOPBACK}", "--user=root",
             "--skip-name-resolve", "--character-set-server=utf8mb4",
             "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M",
             "--performance-schema=OFF", "--skip-log-bin"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=harness._die_with_parent)
        log.close()
        deadline = time.monotonic() + MARIADB_START_TIMEOUT
        while True:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1):
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("mariadbd did not start:\n" + self.log_path.read_text())
            time.sleep(0.02)

    def stop(self):
        """SIGTERM by PID and wait: InnoDB shuts down cleanly."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, statement):
        """Runs SQL as root; returns the rows, tab-separated, one per line."""
        result = subprocess.run(["mariadb", "--no-defaults", "-S", str(self.socket), "-uroot",
                                 "-N", "-B", "-e", statement],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise AssertionError(f"mariadb -e {statement!r}: {result.stderr}")
        return result.stdout

    def create_database(self, name, user="parley", password="p@ss:w/rd %"):
        """The database and its user, as docs/storage.md sets them up; the URI
        with the password percent-encoded."""
        self.sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
                 f" CREATE USER IF NOT EXISTS '{user}'@'{LOOPBACK}' IDENTIFIED BY '{password}';"
                 f" GRANT ALL PRIVILEGES ON {name}.* TO '{user}'@'{LOOPBACK}';")
        return (f"mysql://{user}:{urllib.parse.quote(password, safe='')}@{LOOPBACK}:{self.port}"
                f"/{name}")


def testtool():
    """parley_storage_testtool: fills, dumps and checks a storage URI."""
    return harness.binary("PARLEY_STORAGE_TESTTOOL")


def is_iq(element, ident):
    return element.tag == qname(NS_CLIENT, "iq") and element.get("id") == ident


def roster_items(answer):
    """jid -> (name, subscription, ask, sorted groups) of a roster result."""
    query = answer.find(qname(NS_ROSTER, "query"))
    items = {}
    for item in query.findall(qname(NS_ROSTER, "item")):
        groups = sorted(group.text or "" for group in item.findall(qname(NS_ROSTER, "group")))
        items[item.get("jid")] = (item.get("name") or "", item.get("subscription"),
                                  item.get("ask") == "subscribe", groups)
    return items


class StorageTestCase(unittest.TestCase):
    """A MariaDB, and a parleyd whose log is printed when the test fails."""

    def setUp(self):
        self.mariadb = Mariadb()
        self.addCleanup(self.mariadb.remove)
        self.server = None

    def start_server(self, storage):
        self.server = Server()
        self.server.storage = storage
        self.addCleanup(self._stop_server)
        self.server.start()
        return self.server

    def _stop_server(self):
        failed = any(test is self for test, _ in
                     self._outcome.result.failures + self._outcome.result.errors)
        try:
            code = self.server.stop()
        finally:
            self.server.kill()
        if failed:
            print("\n----- parleyd log -----\n" + self.server.log() + "\n----- mariadb log -----\n"
                  + (self.mariadb.log_path.read_text() if self.mariadb.log_path.exists() else ""))
        else:
            self.server.remove_files()
        if code not in (0, None):
            raise AssertionError(f"parleyd exited with {code} after SIGTERM\n" + self.server.log())

    def raw(self):
        client = RawClient(self.server)
        self.addCleanup(client.close)
        return client

    def logged_in(self, user, password, resource="raw"):
        client = self.raw()
        client.login(user, password, resource)
        return client


class DatabaseOutage(StorageTestCase):

    USERS = [f"user{n:02d}" for n in range(1, 21)]

    def test_sessions_survive_storage_errors_are_answered_and_parley_recovers(self):
        server = self.start_server(self.mariadb.create_database("parley"))
        for user in self.USERS + ["sleeper", "late"]:
            server.register(user, f"pw-{user}")
        clients = {user: self.logged_in(user, f"pw-{user}") for user in self.USERS}
        for client in clients.values():
            client.presence()
        first, second, third = (clients[user] for user in self.USERS[:3])

        # Acknowledged before the outage: a roster item (the iq result) and an
        # offline message (seen in the database).
        answer = first.iq(f"<query xmlns='{NS_ROSTER}'><item jid='friend@{DOMAIN}' name='Friend'>"
                          "<group>Before</group></item></query>", type_="set")
        self.assertEqual(answer.get("type"), "result", to_text(answer))
        second.message(f"sleeper@{DOMAIN}", "stored before the outage")
        deadline = time.monotonic() + harness.STEP_TIMEOUT
        while self.mariadb.sql("SELECT COUNT(*) FROM parley.offline_messages").strip() != "1":
            self.assertLess(time.monotonic(), deadline, "the offline message was never stored")
            time.sleep(0.05)

        self.mariadb.stop()

        # Storage-bound requests get errors, quickly.
        started = time.monotonic()
        answer = first.iq(f"<query xmlns='{NS_ROSTER}'/>")
        self.assertEqual(answer.get("type"), "error", to_text(answer))
        self.assert_retry_later(answer)
        third.message(f"sleeper@{DOMAIN}", "sent during the outage")
        bounce = third.wait_for(lambda e: e.tag == qname(NS_CLIENT, "message")
                                and e.get("type") == "error")
        self.assert_retry_later(bounce)
        late = self.raw()
        late.open_stream()
        late.starttls()
        failure = late.auth_plain("late", "pw-late")
        self.assertEqual(failure.tag, qname(NS_SASL, "failure"), to_text(failure))
        self.assertIsNotNone(failure.find(qname(NS_SASL, "temporary-auth-failure")), to_text(failure))
        scram = self.raw()
        scram.open_stream()
        scram.starttls()
        failure = scram.auth_scram("late", "pw-late")
        self.assertIsNotNone(failure.find(qname(NS_SASL, "temporary-auth-failure")), to_text(failure))
        self.assertLess(time.monotonic() - started, 30)

        # No session dropped: every client still gets answers, and messages
        # between connected users still flow.
        self.assert_all_answer_pings(clients)
        first.send(f"<message to='{second.jid}' type='chat'><body>during, online</body></message>")
        second.wait_message("during, online")
        self.assertIsNone(server.process.poll(), "parleyd died during the outage")

        self.mariadb.start()

        # Parley recovers by itself: the next requests succeed, and what was
        # acknowledged before the outage is all there.
        answer = first.iq(f"<query xmlns='{NS_ROSTER}'/>")
        self.assertEqual(answer.get("type"), "result", to_text(answer))
        self.assertEqual(roster_items(answer),
                         {f"friend@{DOMAIN}": ("Friend", "none", False, ["Before"])})
        answer = first.iq(f"<query xmlns='{NS_ROSTER}'><item jid='after@{DOMAIN}'/></query>",
                          type_="set")
        self.assertEqual(answer.get("type"), "result", to_text(answer))
        self.logged_in("late", "pw-late")
        sleeper = self.logged_in("sleeper", "pw-sleeper")
        sleeper.presence()
        message = sleeper.wait_for(lambda e: e.tag == qname(NS_CLIENT, "message"))
        self.assertEqual(message.findtext(qname(NS_CLIENT, "body")), "stored before the outage")
        self.assertIsNotNone(message.find(qname(NS_DELAY, "delay")))
        self.assert_all_answer_pings(clients)
        self.assertEqual(self.mariadb.sql("SELECT COUNT(*) FROM parley.offline_messages").strip(), "0")

    def assert_retry_later(self, stanza):
        """internal-server-error, or any error of type wait (RFC 6120 §8.3.2)."""
        error = stanza.find(qname(NS_CLIENT, "error"))
        self.assertIsNotNone(error, to_text(stanza))
        condition = stanza_error_condition(stanza)
        self.assertTrue(condition == "internal-server-error" or error.get("type") == "wait",
                        to_text(stanza))

    def assert_all_answer_pings(self, clients):
        for user, client in clients.items():
            answer = client.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN)
            self.assertEqual(answer.get("type"), "result", f"{user}: {to_text(answer)}")


class Migration(StorageTestCase):

    USERS = 1000

    def test_sqlite_to_mariadb_with_a_thousand_users(self):
        workdir = Path(tempfile.mkdtemp(prefix="parley-migrate-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        source = f"sqlite:{workdir / 'source.db'}"
        target = self.mariadb.create_database("parley")
        tool = testtool()
        subprocess.run([tool, "fill", source, DOMAIN, str(self.USERS)], check=True, timeout=300)

        first = self.migrate(source, target)
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        totals = (f"{self.USERS} accounts, {self.USERS} rosters with "
                  f"{4 * self.USERS + self.USERS // 3} items and "
                  f"{self.USERS // 10} pending subscriptions, {2 * self.USERS // 5} offline messages")
        self.assertIn("copied: " + totals, first.stdout)
        self.assertIn("verified in the target: " + totals, first.stdout)

        again = self.migrate(source, target)
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertIn("copied: 0 accounts, 0 rosters with 0 items", again.stdout)
        self.assertIn("already in the target: " + totals, again.stdout)

        # Every record, compared through the storage API of both backends.
        source_dump = subprocess.run([tool, "dump", source], capture_output=True, text=True,
                                     check=True, timeout=300).stdout
        target_dump = subprocess.run([tool, "dump", target], capture_output=True, text=True,
                                     check=True, timeout=300).stdout
        self.assertEqual(len(source_dump.splitlines()),
                         self.USERS * (1 + 1 + 5) + self.USERS // 3 + self.USERS // 10
                         + 2 * self.USERS // 5)
        self.assertEqual(source_dump, target_dump)
        # Every account's stored keys still verify its password.
        checked = subprocess.run([tool, "check-passwords", target, DOMAIN], capture_output=True,
                                 text=True, timeout=300)
        self.assertEqual(checked.returncode, 0, checked.stderr)
        self.assertIn(f"{self.USERS} accounts checked, 0 failed", checked.stdout)

        # parleyd on MariaDB: a sample of users log in with real SCRAM, and
        # their rosters, pending requests and offline messages are what the
        # SQLite file held.
        expected = read_sqlite(workdir / "source.db")
        self.start_server(target)
        for n in sorted(set(range(1, self.USERS + 1, 37)) | {10, 500, self.USERS}):
            user = f"user{n:04d}"
            owner = f"{user}@{DOMAIN}"
            client = self.raw()
            client.open_stream()
            client.starttls()
            outcome = client.auth_scram(user, f"pw-{user}", "sha1" if n % 2 else "sha256")
            self.assertEqual(outcome.tag, qname(NS_SASL, "success"), f"{user}: {to_text(outcome)}")
            client.open_stream()
            client.bind("migrated")
            answer = client.iq(f"<query xmlns='{NS_ROSTER}'/>")
            self.assertEqual(roster_items(answer), expected["rosters"][owner], user)
            client.presence()
            # Offline messages in their order, and the pending requests, in
            # whatever order the two kinds interleave.
            bodies = [stanza.split("<body>")[1].split("</body>")[0]
                      for stanza in expected["offline"].get(owner, [])]
            requests = set(expected["pending"].get(owner, []))
            received = []
            while len(received) < len(bodies) or requests:
                element = client.recv()
                if element.tag == qname(NS_CLIENT, "message"):
                    received.append(element.findtext(qname(NS_CLIENT, "body")))
                elif element.tag == qname(NS_CLIENT, "presence") and element.get("type") == "subscribe":
                    requests.discard(element.get("from"))
            self.assertEqual(received, bodies, user)
            client.close()

    def test_conflicting_target_is_refused_unless_forced(self):
        workdir = Path(tempfile.mkdtemp(prefix="parley-migrate-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        source = f"sqlite:{workdir / 'source.db'}"
        target = self.mariadb.create_database("parley")
        tool = testtool()
        subprocess.run([tool, "fill", source, DOMAIN, "3"], check=True, timeout=60)
        # The target already has user0002, with other keys.
        subprocess.run([tool, "fill", target, DOMAIN, "2"], check=True, timeout=60)
        refused = self.migrate(source, target)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("account user0002@localhost exists in the target", refused.stderr)
        self.assertIn("nothing was written", refused.stderr)
        self.assertEqual(self.mariadb.sql(
            "SELECT COUNT(*) FROM parley.accounts WHERE username = 'user0003'").strip(), "0")
        forced = self.migrate(source, target, "--force")
        self.assertEqual(forced.returncode, 0, forced.stderr)
        self.assertIn("verified in the target: 3 accounts", forced.stdout)
        self.assertEqual(subprocess.run([tool, "dump", source], capture_output=True, text=True).stdout,
                         subprocess.run([tool, "dump", target], capture_output=True, text=True).stdout)

    def migrate(self, source, target, *options):
        return subprocess.run([harness.binary("PARLEYCTL"), "migrate", "--from", source, "--to", target,
                               *options], capture_output=True, text=True, timeout=600)


def read_sqlite(path):
    """The rosters, pending requests and offline messages of a Parley SQLite
    file, read with Python's own sqlite3: an independent reader."""
    database = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rosters, pending, offline = {}, {}, {}
    groups = {}
    for owner, jid, group in database.execute(
            "SELECT o.owner, g.jid, g.group_name FROM roster_groups g"
            " JOIN roster_owners o ON o.id = g.owner_id"):
        groups.setdefault((owner, jid), []).append(group)
    for owner, jid, name, subscription, ask in database.execute(
            "SELECT o.owner, i.jid, i.name, i.subscription, i.ask FROM roster_items i"
            " JOIN roster_owners o ON o.id = i.owner_id WHERE i.removed = 0"):
        rosters.setdefault(owner, {})[jid] = (name, subscription, bool(ask),
                                              sorted(groups.get((owner, jid), [])))
    for owner, sender in database.execute(
            "SELECT o.owner, p.from_jid FROM roster_pending_in p"
            " JOIN roster_owners o ON o.id = p.owner_id ORDER BY p.id"):
        pending.setdefault(owner, []).append(sender)
    for owner, stanza in database.execute("SELECT owner, stanza FROM offline_messages ORDER BY id"):
        offline.setdefault(owner, []).append(stanza)
    database.close()
    return {"rosters": rosters, "pending": pending, "offline": offline}


if __name__ == "__main__":
    unittest.main()
