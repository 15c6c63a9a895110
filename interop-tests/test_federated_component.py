"""A component on Parley reached from another server: a Prosody user (the
federation lab) talks to an XEP-0114 component connected to parleyd."""

from harness import LOOPBACK, free_port
from test_components import Component
from test_federation import (FEDERATION_TIMEOUT, PARLEY_DOMAIN, FederatedServer,
                             FederationTestCase, chat)

ECHO_DOMAIN = f"echo.{PARLEY_DOMAIN}"
ECHO_SECRET = "federated-echo-secret-5b1e"


class FederatedComponentServer(FederatedServer):
    """parleyd for parley.test with a component listener and the echo component."""

    def write_config(self):
        if not self.ports:
            self.ports = {mode: free_port() for mode in self.LISTENER_MODES}
            self.ports["component"] = free_port()
        super().write_config()

    def config(self):
        config = super().config()
        config["listen"] = config["listen"] + [
            {"module": "component", "address": LOOPBACK, "port": self.ports["component"]}]
        config["components"] = [{"domain": ECHO_DOMAIN, "secret": ECHO_SECRET}]
        return config


class FederatedComponent(FederationTestCase):
    server_class = FederatedComponentServer

    def add_records(self, dns):
        # The component's domain is served by Parley's s2s listener; the lab
        # certificate covers it as *.parley.test.
        dns.add_domain(ECHO_DOMAIN, LOOPBACK, srv=[(0, 5, self.server.s2s_port, PARLEY_DOMAIN)])

    async def test_prosody_user_gets_the_components_reply(self):
        self.prosody.start()
        self.server.start()
        component = Component(self.server, ECHO_DOMAIN, ECHO_SECRET)
        self.addAsyncCleanup(component.close)
        self.assertEqual(await component.start(), "session")
        bob = await self.prosody_user("bob")
        chat(bob, ECHO_DOMAIN, "hello over federation")
        reply = await bob.wait_message("echo: hello over federation", timeout=FEDERATION_TIMEOUT)
        self.assertEqual(reply["from"].bare, ECHO_DOMAIN)


