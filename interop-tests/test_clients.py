"""Stock XMPP clients from Debian against parleyd (not test harness code)."""

import asyncio
import os
import shutil
import subprocess

from harness import PASSWORDS, STEP_TIMEOUT, ServerTestCase

GO_SENDXMPP = shutil.which("go-sendxmpp")


class GoSendxmpp(ServerTestCase):

    def send(self, sender, recipient, body, mode):
        """Runs go-sendxmpp as sender; it trusts the test CA through SSL_CERT_FILE
        (Go reads it on Linux), so certificate verification stays on."""
        args = [GO_SENDXMPP, "-u", sender, "-p", PASSWORDS[sender.split("@")[0]],
                "-j", f"127.0.0.1:{self.server.port(mode)}", "--timeout", "10"]
        if mode == "direct":
            args.append("-t")
        env = dict(os.environ, SSL_CERT_FILE=str(self.server.ca_cert), HOME=str(self.server.workdir))
        return subprocess.run(args + [recipient], input=body, text=True, capture_output=True,
                              env=env, timeout=STEP_TIMEOUT * 3)

    async def check_delivery(self, mode):
        alice, bob = self.register("alice", "bob")
        receiver = await self.logged_in(bob)
        receiver.send_presence()  # available, so the message is delivered now rather than stored
        await receiver.wait_for(lambda s: s.name == "presence" and s["from"] == receiver.boundjid)
        body = f"hello from go-sendxmpp over {mode}"
        result = await asyncio.to_thread(self.send, alice, bob, body, mode)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        message = await receiver.wait_message(body)
        self.assertEqual(message["from"].bare, alice)

    async def test_message_over_starttls(self):
        self.assertIsNotNone(GO_SENDXMPP, "go-sendxmpp is not installed (scripts/install-deps.sh test)")
        await self.check_delivery("starttls")

    async def test_message_over_direct_tls(self):
        self.assertIsNotNone(GO_SENDXMPP, "go-sendxmpp is not installed (scripts/install-deps.sh test)")
        await self.check_delivery("direct")
