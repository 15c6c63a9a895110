"""Hostile input: each case gets the protocol's answer, and only the offending
session suffers; two bystanders keep talking afterwards."""

from harness import (NS_CLIENT, ServerTestCase, StreamClosed, qname, stanza_error_condition,
                     to_text)


class HostileInput(ServerTestCase):

    def setUp(self):
        super().setUp()
        self.register("alice", "bob", "mallory")
        self.alice = self.raw_logged_in("alice", "desk")
        self.bob = self.raw_logged_in("bob", "desk")
        self.rounds = 0

    def assert_bystanders_unaffected(self):
        """alice and bob still exchange messages both ways."""
        self.rounds += 1
        there, back = f"there {self.rounds}", f"back {self.rounds}"
        self.alice.message("bob@localhost/desk", there)
        self.assertEqual(self.bob.wait_message(there).get("from"), "alice@localhost/desk")
        self.bob.message("alice@localhost/desk", back)
        self.assertEqual(self.alice.wait_message(back).get("from"), "bob@localhost/desk")

    def mallory(self):
        return self.raw_logged_in("mallory", "evil")

    async def test_not_well_formed(self):
        mallory = self.mallory()
        mallory.send("<message to='bob@localhost'><body>unbalanced</bodyy></message>")
        self.assertEqual(mallory.stream_error(), "not-well-formed")
        self.assert_bystanders_unaffected()

    async def test_doctype_is_restricted_xml(self):
        """RFC 6120 §11.1: no DTD, hence no entities (and no billion laughs)."""
        intruder = self.raw()
        intruder.send("<?xml version='1.0'?>"
                      "<!DOCTYPE stream:stream [<!ENTITY lol 'lol'>"
                      "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
                      "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                      "xmlns:stream='http://etherx.jabber.org/streams'>")
        self.assertEqual(intruder.stream_error(), "restricted-xml")
        self.assert_bystanders_unaffected()

    async def test_comment_is_restricted_xml(self):
        mallory = self.mallory()
        mallory.send("<!-- comments are not allowed in XMPP -->")
        self.assertEqual(mallory.stream_error(), "restricted-xml")
        self.assert_bystanders_unaffected()

    async def test_one_megabyte_stanza(self):
        mallory = self.mallory()
        mallory.send("<message to='bob@localhost/desk'><body>")
        chunk = "x" * 16384
        try:
            for _ in range(64):  # 1 MiB of body, stopping once the server answers
                mallory.send(chunk)
                if mallory.readable():
                    break
        except OSError:
            pass  # the server stopped reading: its answer is what matters
        try:
            condition = mallory.stream_error()
        except StreamClosed as error:
            self.fail(f"connection dropped without a stream error: {error}")
        self.assertEqual(condition, "policy-violation")
        self.assert_bystanders_unaffected()
        self.assertFalse([e for e in self.bob.skipped if len(to_text(e)) > 100000],
                         "the oversized stanza must not have been delivered")

    async def test_malformed_to_jid(self):
        mallory = self.mallory()
        for bad_jid in ('bad"quote@localhost', "alice@localhost/", "@localhost",
                        "a" * 1024 + "@localhost"):
            with self.subTest(to=bad_jid[:40]):
                escaped = bad_jid.replace('"', "&quot;")
                mallory.send(f"<message to=\"{escaped}\" id='m1' type='chat'>"
                             "<body>to nowhere</body></message>")
                bounce = mallory.wait_for(lambda e: e.tag == qname(NS_CLIENT, "message")
                                          and e.get("type") == "error")
                self.assertEqual(stanza_error_condition(bounce), "jid-malformed",
                                 to_text(bounce))
                self.assertEqual(bounce.get("id"), "m1")
        # mallory's own session survives a stanza error
        mallory.message("bob@localhost/desk", "still here")
        self.bob.wait_message("still here")
        self.assert_bystanders_unaffected()

    async def test_spoofed_from(self):
        mallory = self.mallory()
        mallory.send("<message from='alice@localhost/desk' to='bob@localhost/desk' "
                     "type='chat'><body>forged</body></message>")
        self.assertEqual(mallory.stream_error(), "invalid-from")
        self.assert_bystanders_unaffected()
        bodies = [e.findtext(qname(NS_CLIENT, "body")) for e in self.bob.skipped]
        self.assertNotIn("forged", bodies, "a forged stanza must never be delivered")

