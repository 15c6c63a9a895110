-- Prosody 0.12 for the compose lab: prosody.test, federating with parley.test.
run_as_root = true
pidfile = "/var/lib/prosody/prosody.pid"
data_path = "/var/lib/prosody"
certificates = "/certs"
log = { { levels = { min = "info" }, to = "console" } }

interfaces = { "*" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
s2s_direct_tls_ports = { 5270 }
http_ports = { }
https_ports = { }

modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "version"; "time"; "posix" }
authentication = "internal_hashed"
storage = "internal"
allow_registration = false

c2s_require_encryption = true
s2s_require_encryption = true
-- Certificates only; set to false (or list domains in s2s_insecure_domains)
-- to allow dialback.
s2s_secure_auth = true
ssl = { cafile = "/certs/ca.crt" }

-- Resolve through the lab's unbound; libunbound would answer NXDOMAIN for
-- test. by itself without the local-zone line.
unbound = {
  resolvconf = false;
  hoststxt = false;
  forward = { "172.28.0.53" };
  options = { ["local-zone:"] = "test. transparent" };
}

VirtualHost "prosody.test"
Component "conference.prosody.test" "muc"
