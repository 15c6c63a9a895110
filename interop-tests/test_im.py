"""Instant messaging (RFC 6121): subscriptions, routing, offline messages, roster versions."""

import datetime

from harness import (NS_CLIENT, NS_DELAY, NS_ROSTER, PASSWORDS, STEP_TIMEOUT, ServerTestCase,
                     qname, to_text)


def roster_push_for(contact):
    """Predicate: a roster push (iq set) carrying an item for contact."""
    def matches(stanza):
        return (stanza.name == "iq" and stanza["type"] == "set"
                and roster_item(stanza.xml, contact) is not None)
    return matches


def roster_item(iq_element, contact):
    query = iq_element.find(qname(NS_ROSTER, "query"))
    if query is None:
        return None
    for item in query.findall(qname(NS_ROSTER, "item")):
        if item.get("jid") == contact:
            return item
    return None


def presence_from(sender, kind=None):
    """Predicate: a presence from sender (bare or full) of type kind
    (None for available)."""
    def matches(stanza):
        return (stanza.name == "presence"
                and sender in (stanza["from"].bare, str(stanza["from"]))
                and stanza.xml.get("type") == kind)
    return matches


class Subscription(ServerTestCase):

    async def test_mutual_subscription_step_by_step(self):
        alice_jid, bob_jid = self.register("alice", "bob")
        alice = await self.logged_in(alice_jid)
        bob = await self.logged_in(bob_jid)
        for client in (alice, bob):
            await client.get_roster(timeout=STEP_TIMEOUT)  # become an interested resource
            client.send_presence()
        await alice.wait_for(presence_from(str(alice.boundjid)))  # own presence reflected
        await bob.wait_for(presence_from(str(bob.boundjid)))

        # RFC 6121 §3.1.2: alice asks; her roster gets bob with ask='subscribe'.
        mark_a, mark_b = len(alice.received), len(bob.received)
        alice.send_presence(pto=bob_jid, ptype="subscribe")
        push = await alice.wait_for(roster_push_for(bob_jid), start=mark_a)
        item = roster_item(push.xml, bob_jid)
        self.assertEqual(item.get("subscription"), "none", to_text(push.xml))
        self.assertEqual(item.get("ask"), "subscribe", to_text(push.xml))
        # §3.1.3: bob (the contact) receives the request from alice's bare JID.
        request = await bob.wait_for(presence_from(alice_jid, "subscribe"), start=mark_b)
        self.assertEqual(str(request["from"]), alice_jid)

        # §3.1.5: bob approves; his roster gets alice with subscription='from'.
        mark_a, mark_b = len(alice.received), len(bob.received)
        bob.send_presence(pto=alice_jid, ptype="subscribed")
        push = await bob.wait_for(roster_push_for(alice_jid), start=mark_b)
        self.assertEqual(roster_item(push.xml, alice_jid).get("subscription"), "from")
        # §3.1.6: alice gets 'subscribed', a push with subscription='to' and no
        # ask, and bob's current presence.
        await alice.wait_for(presence_from(bob_jid, "subscribed"), start=mark_a)
        push = await alice.wait_for(roster_push_for(bob_jid), start=mark_a)
        item = roster_item(push.xml, bob_jid)
        self.assertEqual(item.get("subscription"), "to", to_text(push.xml))
        self.assertIsNone(item.get("ask"), to_text(push.xml))
        await alice.wait_for(presence_from(str(bob.boundjid)), start=mark_a)

        # The reverse direction makes it 'both' on each side.
        mark_a, mark_b = len(alice.received), len(bob.received)
        bob.send_presence(pto=alice_jid, ptype="subscribe")
        push = await bob.wait_for(roster_push_for(alice_jid), start=mark_b)
        item = roster_item(push.xml, alice_jid)
        self.assertEqual((item.get("subscription"), item.get("ask")), ("from", "subscribe"))
        await alice.wait_for(presence_from(bob_jid, "subscribe"), start=mark_a)

        mark_a, mark_b = len(alice.received), len(bob.received)
        alice.send_presence(pto=bob_jid, ptype="subscribed")
        push = await alice.wait_for(roster_push_for(bob_jid), start=mark_a)
        self.assertEqual(roster_item(push.xml, bob_jid).get("subscription"), "both")
        await bob.wait_for(presence_from(alice_jid, "subscribed"), start=mark_b)
        push = await bob.wait_for(roster_push_for(alice_jid), start=mark_b)
        item = roster_item(push.xml, alice_jid)
        self.assertEqual((item.get("subscription"), item.get("ask")), ("both", None))
        await bob.wait_for(presence_from(str(alice.boundjid)), start=mark_b)

        # Both rosters, fetched fresh.
        for client, contact in ((alice, bob_jid), (bob, alice_jid)):
            result = await self._fetch_roster(client)
            item = roster_item(result, contact)
            self.assertIsNotNone(item, to_text(result))
            self.assertEqual(item.get("subscription"), "both", to_text(result))
            self.assertIsNone(item.get("ask"), to_text(result))

        # bob reconnects: alice sees him leave, then come back.
        bob_full = str(bob.boundjid)
        mark_a = len(alice.received)
        await bob.close()
        await alice.wait_for(presence_from(bob_full, "unavailable"), start=mark_a)
        bob_again = await self.logged_in(f"{bob_jid}/again")
        bob_again.send_presence()
        await alice.wait_for(presence_from(str(bob_again.boundjid)), start=mark_a)
        # and the server probes on bob's behalf: alice's presence reaches him.
        await bob_again.wait_for(presence_from(str(alice.boundjid)))

    async def _fetch_roster(self, client):
        iq = client.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        result = await iq.send(timeout=STEP_TIMEOUT)
        return result.xml


class Routing(ServerTestCase):

    async def test_bare_full_and_priorities(self):
        alice_jid, bob_jid = self.register("alice", "bob")
        alice = await self.logged_in(alice_jid)
        high = await self.logged_in(f"{bob_jid}/high")
        low = await self.logged_in(f"{bob_jid}/low")
        high.send_presence(ppriority=5)
        low.send_presence(ppriority=1)
        await high.wait_for(presence_from(f"{bob_jid}/low"))  # both now available
        await low.wait_for(presence_from(f"{bob_jid}/high"))

        # Bare JID → only the highest priority resource (RFC 6121 §8.5.2.1.1).
        alice.send_message(mto=bob_jid, mbody="bare-1", mtype="chat")
        message = await high.wait_message(body="bare-1")
        self.assertEqual(message["from"], alice.boundjid)
        # A later message to the other resource proves bare-1 passed it by:
        # one sender's stanzas reach one session in order.
        alice.send_message(mto=f"{bob_jid}/low", mbody="full-low-1", mtype="chat")
        await low.wait_message(body="full-low-1")
        self.assertNotIn("bare-1", self._bodies(low))

        # Full JIDs reach exactly that resource.
        alice.send_message(mto=f"{bob_jid}/high", mbody="full-high-1", mtype="chat")
        await high.wait_message(body="full-high-1")
        self.assertNotIn("full-high-1", self._bodies(low))

        # Negative priority: no longer a candidate for bare JID messages.
        high.send_presence(ppriority=-1)
        await low.wait_for(lambda s: s.name == "presence" and s["from"] == high.boundjid
                           and s["priority"] == -1)
        alice.send_message(mto=bob_jid, mbody="bare-2", mtype="chat")
        await low.wait_message(body="bare-2")
        alice.send_message(mto=f"{bob_jid}/high", mbody="full-high-2", mtype="chat")
        await high.wait_message(body="full-high-2")
        self.assertNotIn("bare-2", self._bodies(high))

        # A full JID whose resource is gone is handled like the bare JID
        # (RFC 6121 §8.5.3.2.1) for chat messages.
        await high.close()
        await low.wait_for(presence_from(f"{bob_jid}/high", "unavailable"))
        alice.send_message(mto=f"{bob_jid}/high", mbody="to-departed", mtype="chat")
        message = await low.wait_message(body="to-departed")
        self.assertEqual(message["from"], alice.boundjid)

    @staticmethod
    def _bodies(client):
        return [s["body"] for s in client.received if s.name == "message"]

    async def test_messaging_with_strophe(self):
        alice_jid, bob_jid = self.register("alice", "bob")
        strophe = self.strophe(f"{alice_jid}/strophe", PASSWORDS["alice"])
        strophe.expect(f"CONNECTED {alice_jid}/strophe")
        strophe.send("<presence/>")
        bob = await self.logged_in(bob_jid)

        bob.send_message(mto=f"{alice_jid}/strophe", mbody="hello libstrophe", mtype="chat")
        line = await strophe.wait("hello libstrophe")
        self.assertIn(f'from="{bob.boundjid}"', line)

        bob.send_message(mto=alice_jid, mbody="to the bare jid", mtype="chat")
        await strophe.wait("to the bare jid")

        strophe.send(f"<message to='{bob.boundjid}' type='chat'>"
                     "<body>hello slixmpp</body></message>")
        message = await bob.wait_message(body="hello slixmpp")
        self.assertEqual(str(message["from"]), f"{alice_jid}/strophe")
        self.assertEqual(strophe.close(), 0)


class Offline(ServerTestCase):

    async def test_delivered_in_order_with_delay(self):
        alice_jid, bob_jid = self.register("alice", "bob")
        alice = await self.logged_in(alice_jid)
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        bodies = [f"while you were away {n}" for n in range(1, 4)]
        for body in bodies:
            alice.send_message(mto=bob_jid, mbody=body, mtype="chat")
        # The server handles one session's stanzas in order: once this ping is
        # answered, the messages before it have been routed to storage.
        await alice.ping_server()

        bob = await self.logged_in(bob_jid)
        bob.send_presence()
        for body in bodies:
            await bob.wait_message(body=body)
        received = [s for s in bob.received if s.name == "message" and s["body"]]
        self.assertEqual([s["body"] for s in received], bodies, "delivered in order, once")
        for stanza in received:
            self.assertEqual(stanza["from"].bare, alice_jid)
            delay = stanza.xml.find(qname(NS_DELAY, "delay"))
            self.assertIsNotNone(delay, str(stanza))
            self.assertEqual(delay.get("from"), "localhost", str(stanza))
            stamp = delay.get("stamp")
            self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            self.assertLessEqual(before, when.replace(microsecond=0))
            self.assertLessEqual(when, datetime.datetime.now(datetime.timezone.utc))

        # Delivered means gone: a second login gets nothing again.
        await bob.close()
        again = await self.logged_in(bob_jid)
        again.send_presence()
        await again.wait_for(presence_from(str(again.boundjid)))
        alice.send_message(mto=bob_jid, mbody="live again", mtype="chat")
        await again.wait_message(body="live again")
        self.assertEqual([s["body"] for s in again.received
                          if s.name == "message" and s["body"]], ["live again"])


class RosterVersioning(ServerTestCase):

    def _get_roster(self, raw, version):
        return raw.iq(f"<query xmlns='{NS_ROSTER}' ver='{version}'/>")

    def _set_item(self, raw, jid, name):
        raw.send(f"<iq type='set' id='set-{name}'><query xmlns='{NS_ROSTER}'>"
                 f"<item jid='{jid}' name='{name}'/></query></iq>")
        push = raw.wait_for(lambda e: e.tag == qname(NS_CLIENT, "iq") and e.get("type") == "set"
                            and e.find(qname(NS_ROSTER, "query")) is not None)
        raw.send(f"<iq type='result' id='{push.get('id')}'/>")
        raw.wait_for(lambda e: e.get("id") == f"set-{name}" and e.get("type") == "result")
        return push

    async def test_old_version_gets_only_changes(self):
        self.register("alice")
        raw = self.raw()
        raw.open_stream()
        features = raw.starttls()
        raw.auth_plain("alice", PASSWORDS["alice"])
        features = raw.open_stream()
        self.assertIsNotNone(features.find("{urn:xmpp:features:rosterver}ver"),
                             "roster versioning must be advertised: " + to_text(features))
        raw.bind("v")

        first = self._get_roster(raw, "")
        self.assertEqual(first.get("type"), "result", to_text(first))
        query = first.find(qname(NS_ROSTER, "query"))
        self.assertIsNotNone(query, to_text(first))
        self.assertEqual(query.findall(qname(NS_ROSTER, "item")), [])
        version_0 = query.get("ver")
        self.assertIsNotNone(version_0, to_text(first))

        push_1 = self._set_item(raw, "bob@localhost", "Bob")
        version_1 = push_1.find(qname(NS_ROSTER, "query")).get("ver")
        self.assertNotIn(version_1, (None, version_0), to_text(push_1))

        unchanged = self._get_roster(raw, version_1)
        self.assertEqual(unchanged.get("type"), "result", to_text(unchanged))
        self.assertIsNone(unchanged.find(qname(NS_ROSTER, "query")),
                          "an up-to-date version gets an empty result: " + to_text(unchanged))

        push_2 = self._set_item(raw, "carol@localhost", "Carol")
        version_2 = push_2.find(qname(NS_ROSTER, "query")).get("ver")
        self.assertNotIn(version_2, (None, version_0, version_1))
        raw.close()

        # A new session that knows version_1 gets an empty result and then
        # only the change since: carol, as a push carrying version_2.
        later = self.raw_logged_in("alice", "later")
        answer = self._get_roster(later, version_1)
        self.assertEqual(answer.get("type"), "result", to_text(answer))
        query = answer.find(qname(NS_ROSTER, "query"))
        self.assertTrue(query is None or not query.findall(qname(NS_ROSTER, "item")),
                        to_text(answer))
        push = later.wait_for(lambda e: e.tag == qname(NS_CLIENT, "iq")
                              and e.get("type") == "set")
        items = push.findall(f"{qname(NS_ROSTER, 'query')}/{qname(NS_ROSTER, 'item')}")
        self.assertEqual([(i.get("jid"), i.get("name")) for i in items],
                         [("carol@localhost", "Carol")], to_text(push))
        self.assertEqual(push.find(qname(NS_ROSTER, "query")).get("ver"), version_2)
        # Nothing else pending: a ping's answer comes next, not another push.
        skipped_before = len(later.skipped)
        reply = later.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
        self.assertEqual(reply.get("type"), "result")
        self.assertEqual(later.skipped[skipped_before:], [],
                         "no other push may precede the ping's answer")

        # A session with an unknown (or very old) version gets the full roster.
        full = self._get_roster(later, "no-such-version")
        items = full.findall(f"{qname(NS_ROSTER, 'query')}/{qname(NS_ROSTER, 'item')}")
        self.assertEqual(sorted(i.get("jid") for i in items),
                         ["bob@localhost", "carol@localhost"], to_text(full))
