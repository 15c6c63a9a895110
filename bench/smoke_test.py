"""Smoke test of parley-bench against a throwaway parleyd (run through ctest,
label "bench"). Asserts correctness only — accounts created, logins done,
every chat message delivered exactly once — never timings."""

import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop-tests"))
import harness  # noqa: E402

PASSWORD = "bench-smoke-pw"
BENCH_TIMEOUT = 90


class BenchServer(harness.Server):
    """parleyd with the modules the scenarios need and in-band registration
    unthrottled (the bench creates its users)."""

    def config(self):
        config = super().config()
        config["modules"] = {
            "roster": {},
            "presence": {},
            "offline": {},
            "disco": {},
            "ping": {},
            "register": {"open": True, "rate_per_minute": 100000},
        }
        config["log"] = {"level": "info"}
        return config


class BenchSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bench = harness.binary("PARLEY_BENCH")
        cls.server = BenchServer()
        cls.server.start()
        cls.run_bench("register", "--sessions", "8", "--tls", "none")

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.server.stop()
        finally:
            cls.server.kill()
        if code not in (0, None):
            sys.stderr.write(cls.server.log())
        else:
            cls.server.remove_files()

    @classmethod
    def run_bench(cls, scenario, *args, tls_port="starttls_optional", expect_success=True):
        command = [cls.bench, scenario, "--host", harness.LOOPBACK,
                   "--port", str(cls.server.port(tls_port)), "--domain", cls.server.domain,
                   "--password", PASSWORD, "--timeout", str(BENCH_TIMEOUT), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=BENCH_TIMEOUT + 30)
        sys.stderr.write(result.stdout)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if not lines or (result.returncode == 0) != expect_success:
            raise AssertionError(f"{' '.join(command)} exited with {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}\n" + cls.server.log()[-5000:])
        return json.loads(lines[-1])

    def test_login_scram_over_plain_tcp(self):
        summary = self.run_bench("login", "--sessions", "6", "--tls", "none",
                                 "--mechanism", "SCRAM-SHA-256", "--min-iterations", "4096")
        self.assertEqual(summary["logins"], 6)
        self.assertEqual(summary["failures"], 0)

    def test_login_plain_after_starttls_from_several_source_addresses(self):
        summary = self.run_bench("login", "--sessions", "6", "--tls", "starttls",
                                 "--mechanism", "PLAIN", "--sources", "3", tls_port="starttls")
        self.assertEqual(summary["logins"], 6)
        self.assertEqual(summary["failures"], 0)

    def test_plain_is_refused_without_tls(self):
        summary = self.run_bench("login", "--sessions", "1", "--tls", "none",
                                 "--mechanism", "PLAIN", expect_success=False)
        self.assertEqual(summary["logins"], 0)
        self.assertEqual(summary["failures"], 1)
        self.assertIn("PLAIN", summary["first_error"])

    def test_chat_delivers_every_message_exactly_once(self):
        summary = self.run_bench("chat", "--pairs", "3", "--duration", "2", "--tls", "none")
        self.assertGreater(summary["sent"], 0)
        self.assertEqual(summary["delivered"], summary["sent"])
        self.assertEqual(summary["lost"], 0)
        self.assertEqual(summary["duplicated"], 0)
        self.assertEqual(summary["unknown"], 0)
        self.assertEqual(summary["stanza_errors"], 0)

    def test_paced_chat_over_starttls(self):
        summary = self.run_bench("chat", "--pairs", "2", "--duration", "2", "--rate", "200",
                                 "--tls", "starttls", tls_port="starttls")
        self.assertGreater(summary["sent"], 0)
        self.assertEqual(summary["delivered"], summary["sent"])
        self.assertEqual(summary["duplicated"], 0)

    def test_presence_with_mutual_subscriptions(self):
        summary = self.run_bench("presence", "--sessions", "6", "--contacts", "2",
                                 "--duration", "30", "--tls", "none")
        self.assertTrue(summary["complete"])
        self.assertEqual(summary["users"], 6)
        self.assertGreaterEqual(summary["presences"], 6 * 2)
        # A second setup finds the subscriptions in place (the roster says "both").
        again = self.run_bench("presence", "--sessions", "6", "--contacts", "2",
                               "--duration", "30", "--tls", "none")
        self.assertTrue(again["complete"])

    def test_hold_reports_server_memory(self):
        summary = self.run_bench("hold", "--sessions", "4", "--tls", "none", "--settle", "0",
                                 "--server-pid", str(self.server.process.pid))
        self.assertEqual(summary["sessions"], 4)
        self.assertIn("bytes_per_session", summary["points"][0])
        self.assertGreater(summary["baseline_rss_bytes"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
