"""Room archives (XEP-0313 on a XEP-0045 room): occupants chat in a logged room
(status 170), parleyd restarts, and the room, its archive and its join history
are still there; a MAM query on the room pages through every message in order."""

import unittest
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError

from harness import DOMAIN, STEP_TIMEOUT
from test_mam import NS_MAM, query as mam_query
from test_muc import ROOM, MucTestCase, is_groupchat, room_stanza_ids, status_codes

MESSAGE_COUNT = 200
PAGE_SIZE = 45  # not a divisor of MESSAGE_COUNT: the last page is a short one


def is_logging_notice(stanza):
    return (stanza.name == "message" and stanza["from"] == ROOM
            and 170 in status_codes(stanza))


async def page_room_archive(test, client, page_size=PAGE_SIZE):
    """Every page of the room's archive, forward with RSM 'after': (ids, bodies)."""
    ids, bodies, after = [], [], None
    for number in range(MESSAGE_COUNT):
        page = await mam_query(client, f"room-{number}", max_items=page_size, after=after, to=ROOM)
        test.assertLessEqual(len(page.ids), page_size)
        test.assertEqual(page.count, MESSAGE_COUNT)
        for result in page.results:
            test.assertEqual(result.get("queryid"), f"room-{number}")
        ids.extend(page.ids)
        bodies.extend(page.bodies)
        client.received.clear()
        if page.complete:
            return ids, bodies
        test.assertTrue(page.ids, "an incomplete page must not be empty")
        after = page.last
    test.fail("paging did not complete")


class RoomArchive(MucTestCase):

    async def test_logged_room_keeps_its_archive_and_history_across_a_restart(self):
        self.register("alice", "bob", "carol")
        alice = await self.muc_client("alice")
        bob = await self.muc_client("bob")

        await self.join(alice, "Alice")
        mark = len(alice.received)
        await self.configure(alice, roomname="Logged", persistentroom="1", enablearchiving="1")
        await alice.wait_for(is_logging_notice, start=mark)
        self.assertIn("urn:xmpp:mam:2", await self.room_features(bob))
        self.assertIn(170, status_codes(await self.join(bob, "Bob")))

        # Both occupants talk; bob keeps the stanza-ids the room stamped on delivery.
        expected = [f"line {n:03d}" for n in range(MESSAGE_COUNT)]
        mark = len(bob.received)
        for n, body in enumerate(expected):
            (alice if n % 2 == 0 else bob).send_message(mto=ROOM, mbody=body, mtype="groupchat")
        await bob.wait_for(is_groupchat(expected[-2], "Alice"), start=mark, timeout=STEP_TIMEOUT * 3)
        await bob.wait_for(is_groupchat(expected[-1], "Bob"), start=mark, timeout=STEP_TIMEOUT * 3)
        delivered = [stanza for stanza in bob.received[mark:]
                     if stanza.name == "message" and stanza["type"] == "groupchat" and stanza["body"]]
        # Each sender's messages arrive in the order sent; the archive keeps the room's order.
        room_order = [stanza["body"] for stanza in delivered]
        self.assertEqual(sorted(room_order), expected)
        delivered_ids = [room_stanza_ids(stanza)[0] for stanza in delivered]

        ids, bodies = await page_room_archive(self, bob)
        self.assertEqual(bodies, room_order)
        self.assertEqual(ids, delivered_ids)
        await alice.close()
        await bob.close()

        self.assertEqual(self.server.stop(), 0)
        self.server.start()  # same config, same sqlite file

        # A new joiner gets the newest history from the archive, and logging is announced.
        carol = await self.muc_client("carol")
        presence, _subject, _occupants, history = await carol["xep_0045"].join_muc_wait(
            ROOM, "Carol", maxstanzas=5, timeout=STEP_TIMEOUT)
        self.assertIn(170, status_codes(presence))
        self.assertEqual([message["body"] for message in history], room_order[-5:])
        for message in history:
            self.assertEqual(message.xml.find("{urn:xmpp:delay}delay").get("from"), ROOM)
            self.assertEqual(room_stanza_ids(message), [delivered_ids[room_order.index(message["body"])]])

        # The archive pages the same after the restart, forward and from the end.
        ids_after, bodies_after = await page_room_archive(self, carol)
        self.assertEqual(ids_after, delivered_ids)
        self.assertEqual(bodies_after, room_order)
        last = await mam_query(carol, "last", max_items=3, before="", to=ROOM)
        self.assertEqual(last.bodies, room_order[-3:])

        # Talk goes on into the same archive.
        carol.send_message(mto=ROOM, mbody="after the restart", mtype="groupchat")
        echo = await carol.wait_for(is_groupchat("after the restart", "Carol"))
        newest = await mam_query(carol, "newest", max_items=1, before="", to=ROOM)
        self.assertEqual(newest.bodies, ["after the restart"])
        self.assertEqual(newest.ids, room_stanza_ids(echo))

    async def test_members_only_archive_is_closed_to_outsiders(self):
        self.register("alice", "bob", "mallory")
        alice = await self.muc_client("alice")
        bob = await self.muc_client("bob")
        mallory = await self.muc_client("mallory")
        await self.join(alice, "Alice")
        await self.configure(alice, membersonly="1", enablearchiving="1")
        await alice["xep_0045"].set_affiliation(ROOM, "member", jid=f"bob@{DOMAIN}", timeout=STEP_TIMEOUT)
        alice.send_message(mto=ROOM, mbody="members only", mtype="groupchat")
        await alice.wait_for(is_groupchat("members only", "Alice"))

        # bob, a member, reads without joining; mallory may not.
        self.assertEqual((await mam_query(bob, "b", to=ROOM)).bodies, ["members only"])
        iq = mallory.make_iq_set(ito=ROOM)
        ET.SubElement(iq.xml, f"{{{NS_MAM}}}query", queryid="m")
        with self.assertRaises(IqError) as refused:
            await iq.send(timeout=STEP_TIMEOUT)
        self.assertEqual(refused.exception.condition, "forbidden")


if __name__ == "__main__":
    unittest.main()
