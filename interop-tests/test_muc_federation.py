"""A Parley room with a federated occupant: a Prosody user (the federation lab)
joins room@conference.parley.test over s2s, sees the occupants, chats both ways,
gets a private message and an iq through the room, and reads the room's
archive with a MAM query that crosses the federation."""

import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError

import harness
import lab as federation_lab
from harness import LOOPBACK
from test_federation import (FEDERATION_TIMEOUT, PARLEY_DOMAIN, FederatedServer,
                             FederationTestCase)
from test_mam import NS_MAM, query as mam_query

MUC_DOMAIN = f"conference.{PARLEY_DOMAIN}"
ROOM = f"room@{MUC_DOMAIN}"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
MUC_PLUGINS = ("xep_0045", "xep_0004", "xep_0030", "xep_0092")


def occupant(nick):
    return slixmpp.JID(f"{ROOM}/{nick}")


def is_groupchat(body, nick):
    def matches(stanza):
        return (stanza.name == "message" and stanza["type"] == "groupchat"
                and stanza["from"] == occupant(nick) and stanza["body"] == body)
    return matches


class MucFederatedServer(FederatedServer):
    """parleyd for parley.test whose MUC service is conference.parley.test."""

    def config(self):
        config = super().config()
        config["modules"] = {**harness.DEFAULT_MODULES, "muc": {"service": MUC_DOMAIN}}
        return config


class FederatedOccupant(FederationTestCase):
    server_class = MucFederatedServer

    def add_records(self, dns):
        # Prosody reaches the MUC domain through Parley's s2s listener; the lab
        # certificate covers it as *.parley.test.
        dns.add_domain(MUC_DOMAIN, LOOPBACK, srv=[(0, 5, self.server.s2s_port, PARLEY_DOMAIN)])

    async def prosody_muc_user(self, user, password="prosody-pw"):
        self.prosody.register(user, password)
        client = federation_lab.ProsodyClient(self.prosody, user, password, plugins=MUC_PLUGINS)
        self.clients.append(client)
        await client.login()
        client.send_presence()
        return client

    async def test_prosody_user_joins_a_parley_room_chats_and_reads_its_archive(self):
        self.prosody.start()
        self.server.start()
        alice = await self.parley_user("alice", plugins=MUC_PLUGINS)
        bob = await self.prosody_muc_user("bob")

        # alice creates a logged room.
        await alice["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=FEDERATION_TIMEOUT)
        form = alice["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
        form.add_field(var="muc#roomconfig_enablearchiving", value="1")
        await alice["xep_0045"].set_room_config(ROOM, form, timeout=FEDERATION_TIMEOUT)
        alice.send_message(mto=ROOM, mbody="before bob came", mtype="groupchat")
        await alice.wait_for(is_groupchat("before bob came", "Alice"))

        # bob joins over federation: the occupant list, logging (170), the history.
        mark = len(alice.received)
        presence, _subject, occupants, history = await bob["xep_0045"].join_muc_wait(
            ROOM, "Bob", timeout=FEDERATION_TIMEOUT)
        self.assertEqual(presence["from"], occupant("Bob"))
        self.assertTrue({110, 170} <= presence["muc"]["status_codes"])
        self.assertIn(occupant("Alice"), [p["from"] for p in occupants])
        self.assertEqual([m["body"] for m in history], ["before bob came"])
        await alice.wait_for(lambda s: s.name == "presence" and s["from"] == occupant("Bob"), start=mark)
        self.assertEqual(set(alice["xep_0045"].get_roster(ROOM)), {"Alice", "Bob"})

        # Groupchat both ways.
        mark_alice, mark_bob = len(alice.received), len(bob.received)
        bob.send_message(mto=ROOM, mbody="hello from prosody", mtype="groupchat")
        await alice.wait_for(is_groupchat("hello from prosody", "Bob"), start=mark_alice,
                             timeout=FEDERATION_TIMEOUT)
        await bob.wait_for(is_groupchat("hello from prosody", "Bob"), start=mark_bob,
                           timeout=FEDERATION_TIMEOUT)
        alice.send_message(mto=ROOM, mbody="hello from parley", mtype="groupchat")
        await bob.wait_for(is_groupchat("hello from parley", "Alice"), start=mark_bob,
                           timeout=FEDERATION_TIMEOUT)

        # A private message from the Parley occupant, through the room.
        alice.send_message(mto=occupant("Bob"), mbody="just for you", mtype="chat")
        private = await bob.wait_message("just for you", timeout=FEDERATION_TIMEOUT, start=mark_bob)
        self.assertEqual(private["from"], occupant("Alice"))
        self.assertIsNotNone(private.xml.find(f"{{{NS_MUC_USER}}}x"))

        # An iq to bob's occupant JID reaches his client and its answer comes back,
        # from his occupant JID, without his real JID showing.
        version = await alice["xep_0092"].get_version(occupant("Bob"), timeout=FEDERATION_TIMEOUT)
        self.assertEqual(version["from"], occupant("Bob"))
        self.assertTrue(version["software_version"]["name"])

        # bob reads the room's archive with MAM, over federation.
        page = await mam_query(bob, "archive", to=ROOM)
        self.assertEqual(page.bodies, ["before bob came", "hello from prosody", "hello from parley"])
        self.assertTrue(page.complete)
        self.assertEqual(page.count, 3)
        paged = await mam_query(bob, "paged", max_items=2, to=ROOM)
        self.assertEqual(len(paged.ids), 2)
        rest = await mam_query(bob, "rest", after=paged.last, to=ROOM)
        self.assertEqual(paged.ids + rest.ids, page.ids)
        self.assertTrue(rest.complete)

        # A Prosody user outside this members-only room may not read it.
        form = alice["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
        form.add_field(var="muc#roomconfig_membersonly", value="1")
        await alice["xep_0045"].set_room_config(ROOM, form, timeout=FEDERATION_TIMEOUT)
        await bob.wait_for(lambda s: s.name == "presence" and s["type"] == "unavailable"
                           and s["from"] == occupant("Bob"), start=mark_bob, timeout=FEDERATION_TIMEOUT)
        iq = bob.make_iq_set(ito=ROOM)
        ET.SubElement(iq.xml, f"{{{NS_MAM}}}query", queryid="outside")
        with self.assertRaises(IqError) as refused:
            await iq.send(timeout=FEDERATION_TIMEOUT)
        self.assertEqual(refused.exception.condition, "forbidden")


if __name__ == "__main__":
    import unittest
    unittest.main()
