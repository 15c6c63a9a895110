"""Stream management (XEP-0198): acknowledgements, and resumption after a
lost connection with every stanza delivered exactly once."""

from harness import NS_CLIENT, NS_SASL, PASSWORDS, ServerTestCase, qname, to_text

NS_SM = "urn:xmpp:sm:3"
STANZAS = {qname(NS_CLIENT, name) for name in ("message", "presence", "iq")}


def bodies(elements):
    return [e.findtext(qname(NS_CLIENT, "body")) for e in elements
            if e.tag == qname(NS_CLIENT, "message")]


class StreamManagement(ServerTestCase):

    def enable(self, raw, resume):
        resume_attribute = " resume='true'" if resume else ""
        raw.send(f"<enable xmlns='{NS_SM}'{resume_attribute}/>")
        enabled = raw.wait_for(lambda e: e.tag in (qname(NS_SM, "enabled"), qname(NS_SM, "failed")))
        self.assertEqual(enabled.tag, qname(NS_SM, "enabled"), to_text(enabled))
        return enabled

    def authenticated(self, user):
        """A new connection, authenticated but without a bound resource."""
        raw = self.raw()
        raw.open_stream()
        features = raw.starttls()
        answer = raw.auth_plain(user, PASSWORDS[user])
        self.assertEqual(answer.tag, qname(NS_SASL, "success"), to_text(answer))
        features = raw.open_stream()
        self.assertIsNotNone(features.find(qname(NS_SM, "sm")), "stream management must be offered")
        return raw

    async def test_acknowledges_handled_stanzas(self):
        self.register("alice")
        raw = self.raw_logged_in("alice")
        self.enable(raw, resume=False)
        raw.presence()
        raw.iq("<ping xmlns='urn:xmpp:ping'/>", to=raw.domain)
        raw.send(f"<r xmlns='{NS_SM}'/>")
        ack = raw.wait_for(lambda e: e.tag == qname(NS_SM, "a"))
        self.assertEqual(ack.get("h"), "2")

    async def test_resumes_with_every_missed_stanza_once(self):
        self.register("alice", "bob")
        alice = self.raw_logged_in("alice", "phone")
        enabled = self.enable(alice, resume=True)
        self.assertEqual(enabled.get("resume"), "true")
        alice.presence()
        alice.wait_for(lambda e: e.tag == qname(NS_CLIENT, "presence"))
        bob = self.raw_logged_in("bob")
        for body in ("one", "two"):
            bob.message("alice@localhost/phone", body)
            alice.wait_message(body)
        handled = sum(1 for e in alice.skipped if e.tag in STANZAS) + 3  # presence echo and both messages

        mark = self.server.log_mark()
        alice.sock.close()  # the connection drops: no closing tag
        self.server.wait_for_log("held", since=mark)
        for body in ("three", "four", "five"):
            bob.message("alice@localhost/phone", body)

        resumed_alice = self.authenticated("alice")
        resumed_alice.send(f"<resume xmlns='{NS_SM}' previd='{enabled.get('id')}' h='{handled}'/>")
        resumed = resumed_alice.wait_for(lambda e: e.tag in (qname(NS_SM, "resumed"), qname(NS_SM, "failed")))
        self.assertEqual(resumed.tag, qname(NS_SM, "resumed"), to_text(resumed))
        bob.message("alice@localhost/phone", "six")
        resumed_alice.wait_message("six")
        received = bodies(resumed_alice.skipped) + ["six"]
        self.assertEqual(received, ["three", "four", "five", "six"])

    async def test_unknown_stream_cannot_be_resumed(self):
        self.register("alice")
        raw = self.authenticated("alice")
        raw.send(f"<resume xmlns='{NS_SM}' previd='no-such-stream' h='0'/>")
        failed = raw.wait_for(lambda e: e.tag in (qname(NS_SM, "resumed"), qname(NS_SM, "failed")))
        self.assertEqual(failed.tag, qname(NS_SM, "failed"))
