"""Client connections: TLS, SASL, in-band registration, resource conflicts."""

import ssl

from slixmpp.exceptions import IqError

from harness import (NS_SASL, NS_STREAM, NS_TLS, PASSWORDS, STEP_TIMEOUT, RawClient,
                     ServerTestCase, qname, to_text)


class Login(ServerTestCase):

    async def test_starttls_scram_sha256(self):
        (alice,) = self.register("alice")
        client = await self.client(alice)
        await client.login()
        self.assertEqual(client.mechanism, "SCRAM-SHA-256")
        self.assertIn("SCRAM-SHA-256", client["feature_mechanisms"].mech_list)
        self.assertEqual(client.auth_failures, [])
        self.assertEqual(client.boundjid.bare, alice)
        self.assertTrue(client.boundjid.resource, "the server must bind a resource")
        self.assertIsNotNone(client.transport.get_extra_info("ssl_object"),
                             "the session must run over TLS")

    async def test_starttls_mechanism_slixmpp_chooses(self):
        """slixmpp picks the strongest mechanism offered. Its -PLUS support only
        knows tls-unique, which exists up to TLS 1.2, so the client is held to
        TLS 1.2 here: if the server offers SCRAM-SHA-256-PLUS, slixmpp uses it
        and the server must accept the binding."""
        (alice,) = self.register("alice")
        client = await self.client(alice, mechanism=None, channel_binding=True)
        client.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        await client.login()
        offered = client["feature_mechanisms"].mech_list
        expected = ("SCRAM-SHA-256-PLUS" if "SCRAM-SHA-256-PLUS" in offered
                    else "SCRAM-SHA-256")
        self.assertEqual(client.mechanism, expected, f"offered: {sorted(offered)}")
        self.assertEqual(client.auth_failures, [])

    async def test_starttls_slixmpp_default_on_tls13(self):
        """slixmpp left alone on TLS 1.3: it tries -PLUS with tls-unique, which
        TLS 1.3 lacks; the server refuses those attempts, then accepts
        SCRAM-SHA-256 with the GS2 flag "y" (the client could bind, but not
        with a type the server offers) — never falling back to PLAIN."""
        (alice,) = self.register("alice")
        client = await self.client(alice, mechanism=None, channel_binding=True)
        await client.login()
        self.assertEqual(
            client.transport.get_extra_info("ssl_object").version(), "TLSv1.3")
        self.assertEqual(client.mechanism, "SCRAM-SHA-256")
        refused = client.auth_failures
        self.assertTrue(refused, "the tls-unique attempts must have been refused")
        for failure in refused:
            self.assertIn("channel binding", failure["text"], str(failure))

    async def test_scram_sha256_plus_tls_server_end_point(self):
        self.register("alice")
        raw = self.raw()
        raw.open_stream()
        features = raw.starttls()
        mechanisms = RawClient.mechanisms(features)
        self.assertIn("SCRAM-SHA-256-PLUS", mechanisms)
        outcome = raw.auth_scram("alice", PASSWORDS["alice"], "sha256", channel_binding=True)
        self.assertEqual(outcome.tag, qname(NS_SASL, "success"), to_text(outcome))
        raw.open_stream()
        self.assertEqual(raw.bind("plus").split("/")[0], "alice@localhost")

    async def test_direct_tls_slixmpp(self):
        (alice,) = self.register("alice")
        client = await self.client(alice, mode="direct")
        await client.login()
        self.assertEqual(client.mechanism, "SCRAM-SHA-256")
        self.assertNotIn("starttls", client.features,
                         "a Direct TLS stream must not offer STARTTLS")
        self.assertEqual(client.boundjid.bare, alice)

    async def test_direct_tls_strophe(self):
        (alice,) = self.register("alice")
        strophe = self.strophe(f"{alice}/strophe", PASSWORDS["alice"], mode="direct")
        strophe.expect(f"CONNECTED {alice}/strophe")
        await self._ping_roundtrip(strophe)

    async def test_starttls_strophe(self):
        (alice,) = self.register("alice")
        strophe = self.strophe(f"{alice}/strophe", PASSWORDS["alice"])
        strophe.expect(f"CONNECTED {alice}/strophe")
        await self._ping_roundtrip(strophe)

    async def _ping_roundtrip(self, strophe):
        strophe.send("<iq type='get' id='ping-1' to='localhost'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>")
        reply = strophe.expect("id=\"ping-1\"")
        self.assertIn('type="result"', reply)
        self.assertEqual(strophe.close(), 0, "a clean disconnect exits 0")


class InBandRegistration(ServerTestCase):
    """slixmpp 1.8 holds back every stanza until a session starts, which would
    keep XEP-0077's pre-authentication iq in its queue forever; its own test
    suite lifts that with _always_send_everything, and so do we."""

    async def registering_client(self, user, password):
        client = await self.client(user, password, plugins=["xep_0077"])
        client._always_send_everything = True
        return client

    async def test_register_then_login(self):
        client = await self.registering_client("carol", PASSWORDS["carol"])
        form_fields = []

        async def fill_in_form(form):
            form_fields.extend(field for field in ("username", "password")
                               if field in form["register"]["fields"])
            reply = client.Iq()
            reply["type"] = "set"
            reply["register"]["username"] = "carol"
            reply["register"]["password"] = PASSWORDS["carol"]
            await reply.send(timeout=STEP_TIMEOUT)

        client.add_event_handler("register", fill_in_form)
        await client.login()
        self.assertEqual(form_fields, ["username", "password"])
        self.assertEqual(client.boundjid.bare, "carol@localhost")
        await client.close()

        listed = self.server.ctl("users", "localhost")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("carol", listed.stdout.split())

        again = await self.client("carol", PASSWORDS["carol"])
        await again.login()
        self.assertEqual(again.mechanism, "SCRAM-SHA-256")

    async def test_existing_user_is_refused(self):
        self.register("carol")
        client = await self.registering_client("carol", "another-password")
        refusals = []

        async def try_to_take_over(form):
            reply = client.Iq()
            reply["type"] = "set"
            reply["register"]["username"] = "carol"
            reply["register"]["password"] = "another-password"
            try:
                await reply.send(timeout=STEP_TIMEOUT)
            except IqError as error:
                refusals.append(error.iq["error"]["condition"])
                client.disconnect()

        client.add_event_handler("register", try_to_take_over)
        outcome = await client.try_login()
        self.assertEqual(refusals, ["conflict"])
        self.assertNotEqual(outcome, "session")


class Authentication(ServerTestCase):

    async def test_wrong_password_slixmpp(self):
        (alice,) = self.register("alice")
        client = await self.client(alice, "not-her-password")
        outcome = await client.try_login()
        self.assertEqual(outcome, "failed_auth")
        self.assertEqual(client.auth_failures[0]["condition"], "not-authorized")

    async def test_wrong_password_raw(self):
        self.register("alice")
        for mechanism in ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"):
            with self.subTest(mechanism=mechanism):
                raw = self.raw()
                raw.open_stream()
                raw.starttls()
                if mechanism == "PLAIN":
                    answer = raw.auth_plain("alice", "wrong")
                else:
                    answer = raw.auth_scram("alice", "wrong",
                                            "sha1" if mechanism.endswith("1") else "sha256")
                self.assertEqual(answer.tag, qname(NS_SASL, "failure"), to_text(answer))
                self.assertIsNotNone(answer.find(qname(NS_SASL, "not-authorized")),
                                     to_text(answer))

    async def test_plain_refused_before_tls(self):
        self.register("alice")
        raw = self.raw("starttls_optional")
        features = raw.open_stream()
        self.assertIsNotNone(features.find(qname(NS_TLS, "starttls")), to_text(features))
        self.assertNotIn("PLAIN", RawClient.mechanisms(features))
        answer = raw.auth_plain("alice", PASSWORDS["alice"])
        self.assertIn(answer.tag, (qname(NS_SASL, "failure"), qname(NS_STREAM, "error")),
                      to_text(answer))
        self.assertNotEqual(answer.tag, qname(NS_SASL, "success"))
        conditions = {child.tag.split("}")[1] for child in answer}
        self.assertTrue(conditions & {"encryption-required", "invalid-mechanism",
                                      "policy-violation"}, to_text(answer))

    async def test_auth_refused_before_required_starttls(self):
        self.register("alice")
        raw = self.raw("starttls")
        features = raw.open_stream()
        starttls = features.find(qname(NS_TLS, "starttls"))
        self.assertIsNotNone(starttls, to_text(features))
        self.assertIsNotNone(starttls.find(qname(NS_TLS, "required")), to_text(features))
        self.assertNotIn("PLAIN", RawClient.mechanisms(features))
        answer = raw.auth_plain("alice", PASSWORDS["alice"])
        self.assertNotEqual(answer.tag, qname(NS_SASL, "success"), to_text(answer))


class Conflict(ServerTestCase):

    async def test_strophe_session_replaced_by_slixmpp(self):
        (alice,) = self.register("alice")
        strophe = self.strophe(f"{alice}/desk", PASSWORDS["alice"])
        strophe.expect(f"CONNECTED {alice}/desk")

        newcomer = await self.client(f"{alice}/desk")
        await newcomer.login()
        self.assertEqual(str(newcomer.boundjid), f"{alice}/desk")
        await strophe.wait("STREAM-ERROR conflict")
        await strophe.wait("DISCONNECTED")
        self.assertEqual(strophe.close(), 3, "the server ended the old session")

        (bob,) = self.register("bob")
        peer = await self.logged_in(bob)
        peer.send_message(mto=f"{alice}/desk", mbody="to the new session", mtype="chat")
        await newcomer.wait_message(body="to the new session")

    async def test_raw_session_replaced_by_strophe(self):
        (alice,) = self.register("alice")
        old = self.raw_logged_in("alice", "phone")
        strophe = self.strophe(f"{alice}/phone", PASSWORDS["alice"])
        strophe.expect(f"CONNECTED {alice}/phone")
        self.assertEqual(old.stream_error(), "conflict")
        strophe.send("<iq type='get' id='after-conflict' to='localhost'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertIn('type="result"', strophe.expect("after-conflict"))

