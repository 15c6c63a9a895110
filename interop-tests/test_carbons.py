"""Message Carbons (XEP-0280) with slixmpp's xep_0280: a user's resources that
enabled carbons see the messages their other resources receive and send."""

import unittest

from harness import DOMAIN, STEP_TIMEOUT, ServerTestCase

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"


def carbon_of(direction, body):
    def matches(stanza):
        if stanza.name != "message" or stanza["from"].bare != f"alice@{DOMAIN}":
            return False
        inner = stanza.xml.find(f"{{{NS_CARBONS}}}{direction}/{{{NS_FORWARD}}}forwarded/"
                                "{jabber:client}message/{jabber:client}body")
        return inner is not None and inner.text == body
    return matches


class Carbons(ServerTestCase):

    async def test_received_and_sent_messages_are_copied_to_enabled_resources(self):
        self.register("alice", "bob")
        desk = await self.logged_in(f"alice@{DOMAIN}/desk", plugins=("xep_0280",))
        phone = await self.logged_in(f"alice@{DOMAIN}/phone", plugins=("xep_0280",))
        bob = await self.logged_in("bob")
        bob.send_presence()
        for client in (desk, phone):
            client.send_presence()
            await client["xep_0280"].enable(timeout=STEP_TIMEOUT)

        # bob writes to the desk: the phone gets a <received/> carbon.
        bob.send_message(mto=f"alice@{DOMAIN}/desk", mbody="hi desk", mtype="chat")
        await desk.wait_message("hi desk")
        copy = await phone.wait_for(carbon_of("received", "hi desk"))
        self.assertEqual(copy["to"].full, f"alice@{DOMAIN}/phone")

        # The desk answers: the phone gets a <sent/> carbon, bob the message.
        desk.send_message(mto=f"bob@{DOMAIN}", mbody="hi bob", mtype="chat")
        await bob.wait_message("hi bob")
        await phone.wait_for(carbon_of("sent", "hi bob"))

        # After disabling, the phone sees neither.
        await phone["xep_0280"].disable(timeout=STEP_TIMEOUT)
        mark = len(phone.received)
        bob.send_message(mto=f"alice@{DOMAIN}/desk", mbody="quiet", mtype="chat")
        await desk.wait_message("quiet")
        await phone.ping_server()
        await bob.ping_server()
        await desk.ping_server()
        self.assertFalse(any(carbon_of("received", "quiet")(s) for s in phone.received[mark:]))


if __name__ == "__main__":
    unittest.main()
