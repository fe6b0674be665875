# strongroom's embedded default config: the quick start of the README.
# Data goes to ./data (relative to the working directory); one plaintext
# listener on loopback. See README.md for every key.

storage "file" {
  path = "data"
}

listener "tcp" {
  address = "127.0.0.1:8400"
}

# mlock needs CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK, which a developer
# shell rarely has; the packaged config (deploy/strongroom.hcl) keeps it on.
disable_mlock = true
