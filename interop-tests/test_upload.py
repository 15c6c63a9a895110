"""HTTP File Upload (XEP-0363) with slixmpp's xep_0363: alice uploads 5 MB over
HTTPS, bob downloads the same bytes; too-large and over-quota requests get the
XEP's errors; forged authorisations, unknown paths and reused slots are refused;
files survive a restart and go when they expire.

Every HTTPS client here verifies the server's certificate against the test CA."""

import asyncio
import hashlib
import http.client
import io
import os
import signal
import socket
import ssl
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

import aiohttp.connector
from slixmpp.exceptions import IqError

from harness import (DOMAIN, LOOPBACK, STEP_TIMEOUT, Server, ServerTestCase, certificate_fingerprint,
                     free_port, issue_certificate)

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_DATA_FORMS = "jabber:x:data"
SERVICE = f"upload.{DOMAIN}"
MiB = 1024 * 1024
UPLOAD_PLUGINS = ("xep_0030", "xep_0128", "xep_0363")


class UploadServer(Server):
    """parleyd with an HTTPS listener and the upload service. The test
    certificate covers localhost and *.localhost; files are published under
    https://localhost:<port>/upload/, a name that resolves without DNS."""

    def __init__(self, upload_options):
        super().__init__()
        self.upload_options = upload_options
        self.http_port = None

    def write_config(self):
        if not self.ports:  # first start, or a retry after a port clash
            self.http_port = free_port()
        super().write_config()

    def config(self):
        config = super().config()
        config["listen"].append({"module": "http", "address": LOOPBACK, "port": self.http_port,
                                 "tls": "direct"})
        config["upload"] = {"url_base": f"https://{DOMAIN}:{self.http_port}/upload/",
                            **self.upload_options}
        return config


class UploadTestCase(ServerTestCase):
    UPLOAD_OPTIONS = {"max_file_size": "6MiB", "quota": "12MiB"}

    def setUp(self):
        self.server = UploadServer(self.UPLOAD_OPTIONS)
        self.addCleanup(self._stop_server)
        self.server.start()

    def tls_context(self):
        return ssl.create_default_context(cafile=str(self.server.ca_cert))

    def https(self, method, url, body=None, headers=None):
        """One request with Python's http.client; returns (status, headers, body)."""
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=STEP_TIMEOUT,
                                                 context=self.tls_context())
        try:
            connection.request(method, parts.path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def put(self, slot, data, content_type="application/octet-stream", authorization=None):
        headers = {"Content-Type": content_type, "Content-Length": str(len(data))}
        headers["Authorization"] = authorization if authorization is not None else slot["authorization"]
        if not headers["Authorization"]:
            del headers["Authorization"]
        return self.https("PUT", slot["put"], body=data, headers=headers)[0]

    @staticmethod
    async def request_slot(client, filename, size, content_type="application/octet-stream"):
        iq = await client["xep_0363"].request_slot(SERVICE, filename, size, content_type,
                                                   timeout=STEP_TIMEOUT)
        slot = iq["http_upload_slot"]
        headers = {header["name"]: header["value"] for header in slot["put"]["headers"]}
        return {"put": slot["put"]["url"], "get": slot["get"]["url"],
                "authorization": headers.get("Authorization", "")}

    def trust_test_ca_in_aiohttp(self):
        """slixmpp's upload_file gives aiohttp no TLS context, so aiohttp builds
        its default one from OpenSSL's default paths: point them at the test CA
        and drop the context aiohttp may have cached in this process."""
        previous = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(self.server.ca_cert)
        aiohttp.connector.TCPConnector._make_ssl_context.cache_clear()

        def restore():
            if previous is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = previous
            aiohttp.connector.TCPConnector._make_ssl_context.cache_clear()
        self.addCleanup(restore)


class Upload(UploadTestCase):

    async def test_five_megabytes_put_over_https_and_fetched_by_another_user(self):
        self.register("alice", "bob")
        self.trust_test_ca_in_aiohttp()
        alice = await self.logged_in("alice", plugins=UPLOAD_PLUGINS)
        bob = await self.logged_in("bob")
        bob.send_presence()
        await bob.ping_server()  # the presence is handled: bob is available
        data = os.urandom(5 * 1000 * 1000)

        # Discovery as XEP-0363 §3 describes it: the server's disco#items list
        # upload.localhost, whose disco#info has the identity, the feature and
        # the max-file-size form. (slixmpp 1.8's own find_upload_service hands
        # bare coroutines to asyncio.wait, which Python 3.11 refuses, so the
        # test does these two steps and gives the plugin their result.)
        items = await alice["xep_0030"].get_items(jid=DOMAIN, timeout=STEP_TIMEOUT)
        self.assertIn(SERVICE, [item[0] for item in items["disco_items"]["items"]])
        info = await alice["xep_0030"].get_info(jid=SERVICE, timeout=STEP_TIMEOUT)
        self.assertIn(("store", "file", None, "HTTP File Upload"), info["disco_info"]["identities"])
        self.assertIn(NS_UPLOAD, info["disco_info"]["features"])
        forms = [form["values"] for form in info["disco_info"].iterables]
        self.assertIn({"FORM_TYPE": [NS_UPLOAD], "max-file-size": str(6 * MiB)}, forms)
        alice["xep_0363"].upload_service = SERVICE
        alice["xep_0363"].max_file_size = 6 * MiB

        # slixmpp asks for a slot and PUTs with aiohttp, sending the slot's headers.
        url = await alice["xep_0363"].upload_file("holiday photo.jpg", size=len(data),
                                                  content_type="image/jpeg",
                                                  input_file=io.BytesIO(data),
                                                  timeout=STEP_TIMEOUT)
        self.assertTrue(url.startswith(f"https://{DOMAIN}:{self.server.http_port}/upload/"), url)
        self.assertTrue(url.endswith("/holiday%20photo.jpg"), url)

        alice.send_message(mto=f"bob@{DOMAIN}", mbody=url, mtype="chat")
        shared = (await bob.wait_message(sender=f"alice@{DOMAIN}"))["body"]
        status, headers, body = await asyncio.to_thread(self.https, "GET", shared)
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(headers["content-length"], str(len(data)))
        self.assertEqual(headers["content-type"], "image/jpeg")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertTrue(headers["content-disposition"].startswith("inline;"))

        status, headers, body = await asyncio.to_thread(self.https, "HEAD", shared)
        self.assertEqual((status, headers["content-length"], body), (200, str(len(data)), b""))

    async def test_too_large_and_over_quota_get_the_xep_errors(self):
        self.register("alice", "bob")
        alice = await self.logged_in("alice", plugins=UPLOAD_PLUGINS)

        with self.assertRaises(IqError) as too_large:
            await self.request_slot(alice, "big.iso", 6 * MiB + 1)
        error = too_large.exception.iq["error"]
        self.assertEqual((error["condition"], error["type"]), ("not-acceptable", "modify"))
        limit = too_large.exception.iq.xml.find(
            f"{{jabber:client}}error/{{{NS_UPLOAD}}}file-too-large/{{{NS_UPLOAD}}}max-file-size")
        self.assertIsNotNone(limit, str(too_large.exception.iq))
        self.assertEqual(int(limit.text), 6 * MiB)

        # The quota (12 MiB) counts stored files and slots still open.
        first = await self.request_slot(alice, "one.bin", 5 * MiB)
        self.assertEqual(await asyncio.to_thread(self.put, first, os.urandom(5 * MiB)), 201)
        await self.request_slot(alice, "two.bin", 6 * MiB)
        with self.assertRaises(IqError) as over_quota:
            await self.request_slot(alice, "three.bin", MiB + 1)
        error = over_quota.exception.iq["error"]
        self.assertEqual((error["condition"], error["type"]), ("resource-constraint", "wait"))
        self.assertIn("Quota", error["text"])
        await self.request_slot(alice, "three.bin", MiB)  # exactly up to the quota is fine

        bob = await self.logged_in("bob", plugins=UPLOAD_PLUGINS)  # quotas are per user
        await self.request_slot(bob, "four.bin", 6 * MiB)

    async def test_malformed_requests_and_strangers(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=UPLOAD_PLUGINS)
        for filename, size in (("", 10), ("..", 10), ("a.txt", 0), ("a.txt", "ten")):
            with self.assertRaises(IqError) as refused:
                await self.request_slot(alice, filename, size)
            self.assertEqual(refused.exception.iq["error"]["condition"], "bad-request",
                             (filename, size))
        with self.assertRaises(IqError) as bad_type:
            await self.request_slot(alice, "a.txt", 10, "text/html\r\nX-Evil: yes")
        self.assertEqual(bad_type.exception.iq["error"]["condition"], "bad-request")

        info = await alice["xep_0030"].get_info(jid=SERVICE, timeout=STEP_TIMEOUT)
        self.assertIn(("store", "file", None, "HTTP File Upload"),
                      info["disco_info"]["identities"])
        self.assertIn(NS_UPLOAD, info["disco_info"]["features"])

    async def test_forged_authorisation_unknown_paths_and_reused_slots(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=UPLOAD_PLUGINS)
        data = os.urandom(1000)
        slot = await self.request_slot(alice, "notes.txt", len(data), "text/plain")
        self.assertEqual(slot["put"], slot["get"])
        self.assertTrue(slot["authorization"].startswith("Bearer "))

        expiry, mac = slot["authorization"][len("Bearer "):].split(".")
        forged = f"Bearer {expiry}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}"
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "text/plain", forged), 403)
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "text/plain", ""), 403)
        longer = f"Bearer {int(expiry) + 3600}.{mac}"
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "text/plain", longer), 403)
        other = await self.request_slot(alice, "other.txt", len(data), "text/plain")
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "text/plain",
                                                 other["authorization"]), 403)

        # The slot's size and type are binding.
        self.assertEqual(await asyncio.to_thread(self.put, slot, data + b"x", "text/plain"), 413)
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "text/html"), 400)

        self.assertEqual((await asyncio.to_thread(self.https, "GET", slot["get"]))[0], 404)
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "text/plain"), 201)
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "text/plain"), 409)
        status, headers, body = await asyncio.to_thread(self.https, "GET", slot["get"])
        self.assertEqual((status, body), (200, data))
        self.assertEqual(headers["content-type"], "text/plain")

        base = f"https://{DOMAIN}:{self.server.http_port}"
        for path in ("/upload/0123456789abcdef0123456789abcdef/notes.txt",
                     urllib.parse.urlsplit(slot["get"]).path.replace("notes.txt", "other.txt"),
                     "/upload/../secret", "/upload/", "/nothing-here"):
            self.assertEqual((await asyncio.to_thread(self.https, "GET", base + path))[0], 404, path)

    async def test_too_large_put_is_refused_before_its_body(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=UPLOAD_PLUGINS)
        slot = await self.request_slot(alice, "small.bin", 10)
        path = urllib.parse.urlsplit(slot["put"]).path

        def put_header_only():
            """Announces 7 MiB (above max_file_size) and sends none of it: the
            answer must come anyway, and the connection must close."""
            with socket.create_connection((LOOPBACK, self.server.http_port),
                                          timeout=STEP_TIMEOUT) as plain:
                with self.tls_context().wrap_socket(plain, server_hostname=DOMAIN) as tls:
                    tls.sendall(f"PUT {path} HTTP/1.1\r\nHost: {DOMAIN}\r\n"
                                f"Authorization: {slot['authorization']}\r\n"
                                f"Content-Type: application/octet-stream\r\n"
                                f"Content-Length: {7 * MiB}\r\n\r\n".encode())
                    answer = b""
                    while chunk := tls.recv(4096):
                        answer += chunk
                    return answer
        answer = await asyncio.to_thread(put_header_only)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        # The slot is still there for the right body.
        self.assertEqual(await asyncio.to_thread(self.put, slot, b"0123456789"), 201)

    async def test_a_restart_keeps_the_file_downloadable(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=UPLOAD_PLUGINS)
        data = os.urandom(300 * 1000)
        slot = await self.request_slot(alice, "report.pdf", len(data), "application/pdf")
        self.assertEqual(await asyncio.to_thread(self.put, slot, data, "application/pdf"), 201)
        pending = await self.request_slot(alice, "later.bin", 10)
        await alice.close()

        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        status, headers, body = await asyncio.to_thread(self.https, "GET", slot["get"])
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(headers["content-type"], "application/pdf")
        self.assertTrue(headers["content-disposition"].startswith("attachment;"))
        # A slot granted before the restart still takes its PUT (the secret is kept on disk).
        self.assertEqual(await asyncio.to_thread(self.put, pending, b"0123456789"), 201)


    async def test_sighup_gives_the_https_listener_the_new_certificate(self):
        def served_fingerprint():
            with socket.create_connection((LOOPBACK, self.server.http_port),
                                          timeout=STEP_TIMEOUT) as plain:
                with self.tls_context().wrap_socket(plain, server_hostname=DOMAIN) as tls:
                    return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
        self.assertEqual(await asyncio.to_thread(served_fingerprint),
                         certificate_fingerprint(self.server.cert))
        issue_certificate(self.server.workdir, self.server.domain)
        mark = self.server.log_mark()
        self.server.process.send_signal(signal.SIGHUP)
        await asyncio.to_thread(self.server.wait_for_log, "certificates reloaded", mark)
        self.assertEqual(await asyncio.to_thread(served_fingerprint),
                         certificate_fingerprint(self.server.cert))


class Expiry(UploadTestCase):
    UPLOAD_OPTIONS = {"expire_after": 2}

    async def test_files_are_deleted_after_expire_after(self):
        self.register("alice")
        alice = await self.logged_in("alice", plugins=UPLOAD_PLUGINS)
        slot = await self.request_slot(alice, "short-lived.txt", 5, "text/plain")
        mark = self.server.log_mark()
        self.assertEqual(await asyncio.to_thread(self.put, slot, b"hello", "text/plain"), 201)
        self.assertEqual((await asyncio.to_thread(self.https, "GET", slot["get"]))[0], 200)
        await asyncio.to_thread(self.server.wait_for_log, "expired file(s) or slot(s) removed", mark)
        self.assertEqual((await asyncio.to_thread(self.https, "GET", slot["get"]))[0], 404)
        identifier = urllib.parse.urlsplit(slot["get"]).path.split("/")[2]
        self.assertFalse((self.server.workdir / "upload" / identifier).exists())


if __name__ == "__main__":
    unittest.main()
