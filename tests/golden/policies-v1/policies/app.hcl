# An application: reads its secrets, not the private one; encrypts and decrypts orders.
path "kv/app/*" {
  capabilities = ["read", "list"]
}
path "kv/app/private" {
  capabilities = ["deny"]
}
path "keys/orders" {
  capabilities = ["encrypt", "decrypt"]
}
