"""Multi-user chat (XEP-0045) with slixmpp's xep_0045 plugin: three users create
and configure a room, chat, change nicks, kick and ban; a persistent room with its
configuration, subject and affiliations survives a restart of parleyd."""

import asyncio
import unittest

import slixmpp
from slixmpp.exceptions import IqError, PresenceError

from harness import DOMAIN, STEP_TIMEOUT, ServerTestCase

SERVICE = f"conference.{DOMAIN}"
ROOM = f"lobby@{SERVICE}"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_SID = "urn:xmpp:sid:0"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def occupant(nick):
    return slixmpp.JID(f"{ROOM}/{nick}")


def status_codes(stanza):
    return stanza["muc"]["status_codes"]


def is_presence_from(nick, *, unavailable=None, code=None):
    def matches(stanza):
        if stanza.name != "presence" or stanza["from"] != occupant(nick):
            return False
        if unavailable is not None and (stanza["type"] == "unavailable") != unavailable:
            return False
        return code is None or code in status_codes(stanza)
    return matches


def is_groupchat(body, nick):
    def matches(stanza):
        return (stanza.name == "message" and stanza["type"] == "groupchat"
                and stanza["from"] == occupant(nick) and stanza["body"] == body)
    return matches


def room_stanza_ids(message):
    return [element.get("id") for element in message.xml.findall(f"{{{NS_SID}}}stanza-id")
            if element.get("by") == ROOM]


class MucTestCase(ServerTestCase):

    async def muc_client(self, user):
        return await self.logged_in(user, plugins=("xep_0045", "xep_0004", "xep_0030"))

    async def join(self, client, nick, **options):
        presence, _subject, _occupants, _history = await client["xep_0045"].join_muc_wait(
            ROOM, nick, timeout=STEP_TIMEOUT, **options)
        return presence

    async def configure(self, owner, **fields):
        """Submits the room configuration form with the given muc#roomconfig_ fields."""
        form = owner["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
        for name, value in fields.items():
            form.add_field(var=f"muc#roomconfig_{name}", value=value)
        await owner["xep_0045"].set_room_config(ROOM, form, timeout=STEP_TIMEOUT)

    async def room_features(self, client):
        info = await client["xep_0030"].get_info(jid=ROOM, timeout=STEP_TIMEOUT)
        return set(info["disco_info"]["features"])


class GroupChat(MucTestCase):

    async def test_create_configure_chat_nick_change_kick_and_ban(self):
        self.register("alice", "bob", "carol", "mallory")
        alice = await self.muc_client("alice")
        bob = await self.muc_client("bob")
        carol = await self.muc_client("carol")
        mallory = await self.muc_client("mallory")

        # A reserved room: created locked (201), configured from the form first.
        created = await self.join(alice, "Alice")
        self.assertEqual(status_codes(created), {110, 201})
        self.assertEqual(created["muc"]["affiliation"], "owner")
        form = await alice["xep_0045"].get_room_config(ROOM, timeout=STEP_TIMEOUT)
        offered = {field.get("var") for field in form.xml.findall("{jabber:x:data}field")}
        self.assertTrue({"muc#roomconfig_membersonly", "muc#roomconfig_persistentroom"} <= offered)
        await self.configure(alice, roomname="Lobby", membersonly="1", persistentroom="1")
        self.assertTrue({"muc_membersonly", "muc_persistent"} <= await self.room_features(carol))
        for user in ("bob", "carol"):
            await alice["xep_0045"].set_affiliation(ROOM, "member", jid=f"{user}@{DOMAIN}",
                                                    timeout=STEP_TIMEOUT)
        members = await alice["xep_0045"].get_affiliation_list(ROOM, "member", timeout=STEP_TIMEOUT)
        self.assertEqual({str(jid) for jid in members}, {f"bob@{DOMAIN}", f"carol@{DOMAIN}"})

        with self.assertRaises(PresenceError) as refused:
            await self.join(mallory, "Mallory")
        self.assertEqual(refused.exception.condition, "registration-required")

        self.assertEqual((await self.join(bob, "Bob"))["muc"]["affiliation"], "member")
        mark = len(bob.received)
        self.assertEqual(status_codes(await self.join(carol, "Carol")), {110})
        await bob.wait_for(is_presence_from("Carol", unavailable=False), start=mark)

        # Chat: every occupant gets the message, stamped with the room's stanza-id.
        marks = [len(c.received) for c in (alice, bob, carol)]
        alice.send_message(mto=ROOM, mbody="welcome", mtype="groupchat")
        echoes = [await c.wait_for(is_groupchat("welcome", "Alice"), start=m)
                  for c, m in zip((alice, bob, carol), marks)]
        ids = {tuple(room_stanza_ids(echo)) for echo in echoes}
        self.assertEqual(len(ids), 1)
        self.assertEqual(len(next(iter(ids))), 1)

        # Nick change: 303 with the new nick, then presence under the new one.
        mark = len(carol.received)
        bob.send_presence(pto=f"{ROOM}/Robert")
        changed = await carol.wait_for(is_presence_from("Bob", unavailable=True, code=303), start=mark)
        item = changed.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
        self.assertEqual(item.get("nick"), "Robert")
        await carol.wait_for(is_presence_from("Robert", unavailable=False), start=mark)
        bob.send_message(mto=ROOM, mbody="renamed", mtype="groupchat")
        await carol.wait_for(is_groupchat("renamed", "Robert"), start=mark)

        # Kick: carol leaves with 307 and may come back.
        mark = len(carol.received)
        await alice["xep_0045"].set_role(ROOM, "Carol", "none", reason="cool down", timeout=STEP_TIMEOUT)
        kicked = await carol.wait_for(is_presence_from("Carol", unavailable=True, code=307), start=mark)
        self.assertIn(110, status_codes(kicked))
        self.assertEqual(kicked["muc"]["role"], "none")
        self.assertEqual(status_codes(await self.join(carol, "Carol")), {110})

        # Ban: bob (Robert) becomes an outcast, leaves with 301 and cannot return.
        marks = [len(bob.received), len(carol.received)]
        await alice["xep_0045"].set_affiliation(ROOM, "outcast", jid=f"bob@{DOMAIN}", reason="spam",
                                                timeout=STEP_TIMEOUT)
        banned = await bob.wait_for(is_presence_from("Robert", unavailable=True, code=301),
                                    start=marks[0])
        self.assertEqual(banned["muc"]["affiliation"], "outcast")
        await carol.wait_for(is_presence_from("Robert", unavailable=True, code=301), start=marks[1])
        with self.assertRaises(PresenceError) as forbidden:
            await self.join(bob, "Bob")
        self.assertEqual(forbidden.exception.condition, "forbidden")
        outcasts = await alice["xep_0045"].get_affiliation_list(ROOM, "outcast", timeout=STEP_TIMEOUT)
        self.assertEqual([str(jid) for jid in outcasts], [f"bob@{DOMAIN}"])

        # Only an owner may destroy the room.
        with self.assertRaises(IqError) as not_owner:
            await carol["xep_0045"].destroy(ROOM, timeout=STEP_TIMEOUT)
        self.assertEqual(not_owner.exception.condition, "forbidden")

    async def test_private_messages_subject_history_and_invitation(self):
        self.register("alice", "bob", "carol")
        alice = await self.muc_client("alice")
        bob = await self.muc_client("bob")
        carol = await self.muc_client("carol")
        carol.send_presence()  # available, so that the invitation reaches it

        await self.join(alice, "Alice")
        await self.configure(alice)  # an instant room: the defaults
        await self.join(bob, "Bob")
        alice["xep_0045"].set_subject(ROOM, "Plans")
        for body in ("one", "two", "three"):
            alice.send_message(mto=ROOM, mbody=body, mtype="groupchat")
        await bob.wait_for(is_groupchat("three", "Alice"))

        mark = len(alice.received)
        bob.send_message(mto=f"{ROOM}/Alice", mbody="just you", mtype="chat")
        private = await alice.wait_message("just you", timeout=STEP_TIMEOUT, start=mark)
        self.assertEqual(private["from"], occupant("Bob"))

        mark = len(carol.received)
        alice["xep_0045"].invite(ROOM, f"carol@{DOMAIN}", reason="come in")
        invitation = await carol.wait_for(
            lambda s: s.name == "message" and s.xml.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}invite")
            is not None, start=mark)
        self.assertEqual(invitation["from"], slixmpp.JID(ROOM))
        self.assertEqual(invitation["muc"]["invite"]["reason"], "come in")

        _presence, subject, _occupants, history = await carol["xep_0045"].join_muc_wait(
            ROOM, "Carol", maxstanzas=2, timeout=STEP_TIMEOUT)
        self.assertEqual([m["body"] for m in history], ["two", "three"])
        self.assertEqual(subject["subject"], "Plans")

        # XEP-0410: a joined occupant's self-ping is answered by the service.
        ping = carol.make_iq_get(ito=f"{ROOM}/Carol")
        ping.xml.append(slixmpp.xmlstream.ET.Element("{urn:xmpp:ping}ping"))
        self.assertEqual((await ping.send(timeout=STEP_TIMEOUT))["type"], "result")


class OccupantIq(MucTestCase):

    async def test_iq_to_an_occupant_is_forwarded_and_answered_through_the_room(self):
        self.register("alice", "bob", "carol")
        plugins = ("xep_0045", "xep_0004", "xep_0030", "xep_0092")
        alice = await self.logged_in("alice", plugins=plugins)
        bob = await self.logged_in("bob", plugins=plugins)
        carol = await self.logged_in("carol", plugins=("xep_0092",))
        await self.join(alice, "Alice")
        await self.configure(alice)
        await self.join(bob, "Bob")

        # bob asks Alice's client its version through the room: the answer
        # comes from her occupant JID, her client saw only bob's occupant JID.
        mark = len(alice.received)
        version = await bob["xep_0092"].get_version(occupant("Alice"), timeout=STEP_TIMEOUT)
        self.assertEqual(version["type"], "result")
        self.assertEqual(version["from"], occupant("Alice"))
        self.assertEqual(version.xml.find("{jabber:iq:version}query/{jabber:iq:version}name").text, "Slixmpp")
        asked = await alice.wait_for(lambda s: s.name == "iq" and s["type"] == "get", start=mark)
        self.assertEqual(asked["from"], occupant("Bob"))

        # Someone outside the room may not.
        with self.assertRaises(IqError) as refused:
            await carol["xep_0092"].get_version(occupant("Alice"), timeout=STEP_TIMEOUT)
        self.assertEqual(refused.exception.condition, "not-acceptable")


class Persistence(MucTestCase):

    async def test_persistent_room_survives_a_restart(self):
        self.register("alice", "bob", "mallory")
        alice = await self.muc_client("alice")
        await self.join(alice, "Alice")
        await self.configure(alice, roomname="Kept", membersonly="1", persistentroom="1")
        await alice["xep_0045"].set_affiliation(ROOM, "member", jid=f"bob@{DOMAIN}", timeout=STEP_TIMEOUT)
        await alice["xep_0045"].set_affiliation(ROOM, "outcast", jid=f"mallory@{DOMAIN}",
                                                timeout=STEP_TIMEOUT)
        mark = len(alice.received)
        alice["xep_0045"].set_subject(ROOM, "Remember me")
        await alice.wait_for(lambda s: s.name == "message" and s["subject"] == "Remember me", start=mark)
        await alice.close()

        self.assertEqual(self.server.stop(), 0)
        self.server.start()  # same config, same sqlite file

        bob = await self.muc_client("bob")
        features = await self.room_features(bob)
        self.assertTrue({"muc_persistent", "muc_membersonly"} <= features)
        presence, subject, _occupants, _history = await bob["xep_0045"].join_muc_wait(
            ROOM, "Bob", timeout=STEP_TIMEOUT)
        self.assertEqual(presence["muc"]["affiliation"], "member")
        self.assertEqual(subject["subject"], "Remember me")

        mallory = await self.muc_client("mallory")
        with self.assertRaises(PresenceError) as banned:
            await self.join(mallory, "Mallory")
        self.assertEqual(banned.exception.condition, "forbidden")

        alice = await self.muc_client("alice")
        self.assertEqual((await self.join(alice, "Alice"))["muc"]["affiliation"], "owner")
        outcasts = await alice["xep_0045"].get_affiliation_list(ROOM, "outcast", timeout=STEP_TIMEOUT)
        self.assertEqual([str(jid) for jid in outcasts], [f"mallory@{DOMAIN}"])


if __name__ == "__main__":
    unittest.main()
