-- The private key of `private_key_jwt` client authentication (docs/connectors.md), sealed like
-- the client secret: aad "oauth_servers.private_key:<id>". NULL: none.
ALTER TABLE oauth_servers ADD COLUMN private_key BLOB;
