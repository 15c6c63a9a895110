"""Message Archive Management (XEP-0313) with RSM paging (XEP-0059): a
conversation over c2s is archived on both sides; an archive of 10,000 messages
pages in order without gaps or duplicates, and with/start/end filters are exact."""

import datetime
import sqlite3
import unittest
import xml.etree.ElementTree as ET

from harness import DOMAIN, STEP_TIMEOUT, ServerTestCase

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NS_FORWARD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
CAROL = f"carol@{DOMAIN}"

# Archive rows written straight into the SQLite file: one millisecond apart.
BASE_MICROS = 1_700_000_000_000_000
MESSAGE_COUNT = 10_000


def iso(micros):
    seconds, fraction = divmod(micros, 1_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:06d}Z"


class Page:
    def __init__(self, results, fin):
        self.results = results
        self.fin = fin

    @property
    def ids(self):
        return [result.get("id") for result in self.results]

    @property
    def bodies(self):
        return [result.find(f"{{{NS_FORWARD}}}forwarded/{{jabber:client}}message/{{jabber:client}}body").text
                for result in self.results]

    @property
    def complete(self):
        return self.fin.get("complete") == "true"

    @property
    def count(self):
        return int(self.fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}count").text)

    @property
    def last(self):
        return self.fin.find(f"{{{NS_RSM}}}set/{{{NS_RSM}}}last").text


async def query(client, query_id, fields=(), max_items=None, after=None, before=None, to=None):
    """One MAM query (of the client's own archive, or of the archive at 'to'):
    the result messages (in arrival order) and the <fin/>."""
    iq = client.make_iq_set(ito=to)
    element = ET.SubElement(iq.xml, f"{{{NS_MAM}}}query", queryid=query_id)
    form = ET.SubElement(element, f"{{{NS_DATA}}}x", type="submit")
    for var, value in (("FORM_TYPE", NS_MAM), *fields):
        field = ET.SubElement(form, f"{{{NS_DATA}}}field", var=var)
        ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    rsm = ET.SubElement(element, f"{{{NS_RSM}}}set")
    if max_items is not None:
        ET.SubElement(rsm, f"{{{NS_RSM}}}max").text = str(max_items)
    if after is not None:
        ET.SubElement(rsm, f"{{{NS_RSM}}}after").text = after
    if before is not None:
        ET.SubElement(rsm, f"{{{NS_RSM}}}before").text = before
    mark = len(client.received)
    reply = await iq.send(timeout=STEP_TIMEOUT * 3)
    results = []
    for stanza in client.received[mark:]:
        if stanza.name != "message":
            continue
        result = stanza.xml.find(f"{{{NS_MAM}}}result")
        if result is not None and result.get("queryid") == query_id:
            results.append(result)
    return Page(results, reply.xml.find(f"{{{NS_MAM}}}fin"))


async def page_through(test, client, fields=(), max_items=250):
    """Every page of a query, forward with RSM 'after'; returns (ids, counts)."""
    ids, counts, after = [], set(), None
    for number in range(MESSAGE_COUNT):
        page = await query(client, f"page-{number}", fields, max_items, after)
        test.assertLessEqual(len(page.ids), max_items)
        ids.extend(page.ids)
        counts.add(page.count)
        client.received.clear()  # keeps the harness' scans short over 10,000 results
        if page.complete:
            return ids, counts
        test.assertTrue(page.ids, "an incomplete page must not be empty")
        after = page.last
    test.fail("paging did not complete")


class Archive(ServerTestCase):

    async def test_conversation_is_archived_on_both_sides(self):
        self.register("alice", "bob")
        alice = await self.logged_in("alice")
        bob = await self.logged_in("bob")
        alice.send_presence()
        bob.send_presence()
        for n in range(3):
            bob.send_message(mto=ALICE, mbody=f"question {n}", mtype="chat")
            received = await alice.wait_message(f"question {n}")
            stamp = received.xml.find(f"{{{NS_SID}}}stanza-id")
            self.assertIsNotNone(stamp)
            self.assertEqual(stamp.get("by"), ALICE)
            alice.send_message(mto=BOB, mbody=f"answer {n}", mtype="chat")
            await bob.wait_message(f"answer {n}")
        expected = [text for n in range(3) for text in (f"question {n}", f"answer {n}")]
        at_alice = await query(alice, "a")
        self.assertEqual(at_alice.bodies, expected)
        self.assertTrue(at_alice.complete)
        self.assertEqual(at_alice.ids[4], stamp.get("id"))  # "question 2", stamped on delivery
        self.assertEqual((await query(bob, "b")).bodies, expected)
        with_bob = await query(alice, "w", fields=(("with", BOB),), max_items=2)
        self.assertEqual(with_bob.bodies, expected[:2])
        self.assertFalse(with_bob.complete)
        self.assertEqual(with_bob.count, 6)

    async def test_ten_thousand_messages_page_without_gaps_and_filters_are_exact(self):
        self.register("alice")
        self.assertEqual(self.server.stop(), 0)
        database = sqlite3.connect(self.server.workdir / "parley.db")
        with database:
            database.executemany(
                "INSERT INTO archive_messages (owner, id, timestamp, with_jid, stanza)"
                " VALUES (?, ?, ?, ?, ?)",
                ((ALICE, f"m{n:05d}", BASE_MICROS + n * 1000, CAROL if n % 3 == 0 else BOB,
                  f"<message from='{CAROL if n % 3 == 0 else BOB}/r' to='{ALICE}' type='chat'>"
                  f"<body>{n}</body></message>")
                 for n in range(MESSAGE_COUNT)))
        database.close()
        self.server.start()
        alice = await self.logged_in("alice")

        ids, counts = await page_through(self, alice)
        self.assertEqual(counts, {MESSAGE_COUNT})
        self.assertEqual(ids, [f"m{n:05d}" for n in range(MESSAGE_COUNT)])

        with_carol, counts = await page_through(self, alice, fields=(("with", CAROL),))
        self.assertEqual(with_carol, [f"m{n:05d}" for n in range(0, MESSAGE_COUNT, 3)])
        self.assertEqual(counts, {len(range(0, MESSAGE_COUNT, 3))})

        window = (("start", iso(BASE_MICROS + 2000 * 1000)), ("end", iso(BASE_MICROS + 2999 * 1000)))
        in_window, counts = await page_through(self, alice, fields=window)
        self.assertEqual(in_window, [f"m{n:05d}" for n in range(2000, 3000)])
        self.assertEqual(counts, {1000})

        both = await query(alice, "both", fields=(("with", BOB), *window), max_items=0)
        self.assertEqual(both.count, len([n for n in range(2000, 3000) if n % 3 != 0]))
        self.assertEqual(both.ids, [])

        # The last page, from the end.
        last = await query(alice, "last", max_items=3, before="")
        self.assertEqual(last.ids, [f"m{n:05d}" for n in range(MESSAGE_COUNT - 3, MESSAGE_COUNT)])


if __name__ == "__main__":
    unittest.main()
