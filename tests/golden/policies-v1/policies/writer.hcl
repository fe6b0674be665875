path "kv/app/*" { capabilities = ["create", "update", "delete"] }
path "sys/kv/config" { capabilities = ["read"] }
