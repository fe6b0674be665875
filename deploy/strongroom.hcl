# The packaged config: /etc/strongroom/strongroom.hcl.
# Every key is described in README.md ("Configuration reference").

# Shown by `strongroom status`; defaults to the name recorded at init.
# cluster_name = "prod-eu-1"

log_level  = "info"
log_format = "text"

# Keys are kept out of swap with mlockall(2); the unit grants CAP_IPC_LOCK.
disable_mlock = false

storage "file" {
  path = "/var/lib/strongroom"
}

# Sidecars on this host: the socket belongs to the strongroom group. To give
# it to the sidecars' group instead, the daemon must be in that group (it has
# no CAP_CHOWN): `systemctl edit strongroom`, add SupplementaryGroups=app.
listener "unix" {
  path        = "/run/strongroom/strongroom.sock"
  socket_mode = "0660"
  # socket_group = "app"
}

# Admins' CLI on this host. To serve other hosts, bind a routable address and
# give it a certificate (and a client CA for mutual TLS):
#   address            = "0.0.0.0:8400"
#   tls_cert_file      = "/etc/strongroom/tls/server.crt"
#   tls_key_file       = "/etc/strongroom/tls/server.key"
#   tls_client_ca_file = "/etc/strongroom/tls/clients-ca.pem"
listener "tcp" {
  address = "127.0.0.1:8400"
}
