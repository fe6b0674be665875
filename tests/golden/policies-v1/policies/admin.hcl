path "kv/*" { capabilities = ["delete", "sudo", "list"] }
path "keys/*" { capabilities = ["create", "read", "list", "rotate", "update", "datakey"] }
path "sys/policy/*" { capabilities = ["read", "list"] }
path "sys/seal" { capabilities = ["sudo"] }
