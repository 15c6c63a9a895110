"""The federation lab works on its own: DNS answers, certificates, a Prosody
that starts, serves a login found through the lab DNS, and stops cleanly."""

import ssl
import subprocess
import sys
import unittest

import harness
from lab import CertificateAuthority, Lab, ProsodyClient


class LabTestCase(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.lab = Lab()
        self.addCleanup(self._close_lab)

    def _close_lab(self):
        result = self._outcome.result
        failed = any(getattr(test, "test_case", test) is self
                     for test, _ in result.failures + result.errors)
        if failed:
            self.lab.keep_files = True
            sys.stderr.write(f"\n{self.lab.logs()}\n----- lab files kept in {self.lab.directory}\n")
        self.lab.close()


class Dns(LabTestCase):
    def test_records_are_served_and_replaced_on_restart(self):
        dns = self.lab.dns
        dns.add_domain("a.test", "127.0.0.21", aaaa=["fd00::21"],
                       srv=[(10, 5, 5269, "xmpp.a.test"), (20, 0, 5299, "backup.a.test")],
                       srvs=[(10, 5, 5270, "xmpp.a.test")],
                       client_srv=[(0, 0, 5222, "xmpp.a.test")])
        dns.add_host("xmpp.a.test", "127.0.0.22")
        dns.add_domain("none.test", srv=[(0, 0, 0, ".")])
        dns.start()

        self.assertEqual(dns.query("a.test", "A"), ("NOERROR", ["127.0.0.21"]))
        self.assertEqual(dns.query("a.test", "AAAA"), ("NOERROR", ["fd00::21"]))
        rcode, srv = dns.query("_xmpp-server._tcp.a.test", "SRV")
        self.assertEqual(rcode, "NOERROR")
        self.assertCountEqual(srv, ["10 5 5269 xmpp.a.test.", "20 0 5299 backup.a.test."])
        self.assertEqual(dns.query("_xmpps-server._tcp.a.test", "SRV"),
                         ("NOERROR", ["10 5 5270 xmpp.a.test."]))
        self.assertEqual(dns.query("_xmpp-client._tcp.a.test", "SRV"),
                         ("NOERROR", ["0 0 5222 xmpp.a.test."]))
        self.assertEqual(dns.query("xmpp.a.test", "A"), ("NOERROR", ["127.0.0.22"]))
        self.assertEqual(dns.query("_xmpp-server._tcp.none.test", "SRV"), ("NOERROR", ["0 0 0 ."]))
        self.assertEqual(dns.query("missing.test", "A")[0], "NXDOMAIN")
        self.assertEqual(dns.query("example.org", "A")[0], "REFUSED")

        port = dns.port
        dns.remove("a.test")
        dns.add_domain("a.test", "127.0.0.23")
        dns.restart()
        self.assertEqual(dns.port, port, "a restart keeps the address configured in peers")
        self.assertEqual(dns.query("a.test", "A"), ("NOERROR", ["127.0.0.23"]))
        self.assertEqual(dns.query("_xmpp-server._tcp.a.test", "SRV")[0], "NXDOMAIN")
        self.assertEqual(dns.server, f"127.0.0.53:{port}")

    def test_dig_sees_the_same_records(self):
        self.lab.dns.add_domain("b.test", srv=[(0, 5, 5269, "xmpp.b.test")])
        self.lab.dns.start()
        dig = subprocess.run(["dig", "+short", "@" + self.lab.dns.address, "-p",
                              str(self.lab.dns.port), "SRV", "_xmpp-server._tcp.b.test"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(dig.stdout.strip(), "0 5 5269 xmpp.b.test.")


class Certificates(LabTestCase):
    def _extensions(self, cert):
        return subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext",
                               "subjectAltName,extendedKeyUsage"],
                              capture_output=True, text=True, check=True).stdout

    def test_server_auth_only_unless_asked(self):
        cert, key = self.lab.issue_certificate("parley.test")
        text = self._extensions(cert)
        self.assertIn("DNS:parley.test", text)
        self.assertIn("DNS:*.parley.test", text)
        self.assertIn("TLS Web Server Authentication", text)
        self.assertNotIn("Client Authentication", text)
        self.assertTrue(key.exists())

        legacy, _ = self.lab.issue_certificate("legacy.test", client_auth=True)
        self.assertIn("TLS Web Client Authentication", self._extensions(legacy))

        context = ssl.create_default_context(cafile=str(self.lab.ca.cert))
        context.load_cert_chain(str(cert), str(key))  # the key matches the certificate
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(self.lab.ca.cert), str(cert)],
                                capture_output=True, text=True)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)


class ProsodyPeer(LabTestCase):
    async def test_starts_serves_a_login_through_the_lab_dns_and_stops(self):
        prosody = self.lab.prosody("prosody.test")
        self.lab.dns.start()
        self.assertEqual(self.lab.dns.query("prosody.test", "A"), ("NOERROR", [prosody.address]))
        self.assertEqual(self.lab.dns.query("_xmpps-server._tcp.prosody.test", "SRV"),
                         ("NOERROR", ["0 5 5270 prosody.test."]))
        prosody.start()
        jid = prosody.register("juliet", "balcony-1")
        self.assertEqual(jid, "juliet@prosody.test")

        client = ProsodyClient(prosody, "juliet", "balcony-1", plugins=["xep_0199"],
                               via_dns=True)
        self.addAsyncCleanup(client.close)
        await client.login()
        self.assertEqual(client.boundjid.bare, jid)
        self.assertEqual(client.mechanism, "SCRAM-SHA-1")
        await client.ping_server()
        await client.close()

        wrong = ProsodyClient(prosody, "juliet", "not-her-password")
        self.addAsyncCleanup(wrong.close)
        self.assertNotEqual(await wrong.try_login(), "session")

        self.assertEqual(prosody.stop(), 0, prosody.log())
        self.assertIn("Shutdown complete", prosody.log())

    async def test_restart_and_direct_tls(self):
        prosody = self.lab.prosody("restart.test", secure_auth=False,
                                   insecure_domains=["parley.test"])
        self.lab.dns.start()
        prosody.register("romeo", "montague-2")
        prosody.start()
        prosody.restart()
        client = ProsodyClient(prosody, "romeo", "montague-2", mode="direct")
        self.addAsyncCleanup(client.close)
        await client.login()
        self.assertIn('s2s_insecure_domains = { "parley.test" }', prosody.config())
        self.assertIn("s2s_secure_auth = false", prosody.config())

    async def test_certificate_from_another_ca_is_not_trusted(self):
        prosody = self.lab.prosody("rogue.test")
        self.lab.dns.start()
        rogue = CertificateAuthority(self.lab.directory / "rogue-ca", name="rogue ca")
        prosody.install_certificate(*rogue.issue("rogue.test"))
        prosody.register("mallory", "mallory-pw")
        prosody.start()
        client = ProsodyClient(prosody, "mallory", "mallory-pw")
        self.addAsyncCleanup(client.close)
        self.assertNotEqual(await client.try_login(), "session")
        trusting = ProsodyClient(prosody, "mallory", "mallory-pw")
        trusting.ca_certs = str(rogue.cert)
        self.addAsyncCleanup(trusting.close)
        self.assertEqual(await trusting.try_login(), "session", "only the trust was wrong")

    async def test_two_prosodys_federate_through_the_lab(self):
        """Both resolve each other through the lab DNS (SRV, Direct TLS first)
        and authenticate with lab certificates (s2s_secure_auth)."""
        verona = self.lab.prosody("verona.test")
        mantua = self.lab.prosody("mantua.test")
        self.lab.dns.start()
        for peer, user in ((verona, "juliet"), (mantua, "romeo")):
            peer.register(user, f"{user}-pw")
            peer.start()
        juliet = ProsodyClient(verona, "juliet", "juliet-pw")
        romeo = ProsodyClient(mantua, "romeo", "romeo-pw")
        for client in (juliet, romeo):
            self.addAsyncCleanup(client.close)
            await client.login()
            client.send_presence()
            await client.ping_server()  # the presence is processed: bare JID messages arrive

        mark = verona.log_mark()
        juliet.send_message(mto="romeo@mantua.test", mbody="wherefore art thou", mtype="chat")
        await romeo.wait_message("wherefore art thou", sender="juliet@verona.test",
                                 timeout=harness.STEP_TIMEOUT * 2)
        verona.wait_for_log("SASL EXTERNAL with mantua.test succeeded", since=mark)
        verona.wait_for_log("Outgoing s2s connection verona.test->mantua.test complete",
                            since=mark)
        romeo.send_message(mto="juliet@verona.test", mbody="by a name", mtype="chat")
        await juliet.wait_message("by a name", sender="romeo@mantua.test")


if __name__ == "__main__":
    unittest.main()
