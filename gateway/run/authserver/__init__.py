"""The development authorization server: OAuth 2.0 / OpenID Connect for the demo and tests.

Built on authlib's server components (authorization code with PKCE S256, refresh tokens
with rotation, client credentials with ``private_key_jwt``), it signs the same JWTs the
gateway already verifies with the local development issuer's key. The login page stands in
for BankID and SITHS: the developer picks who they are. It runs only in dev mode, and
holds its codes and refresh tokens in memory (one process; a restart forgets them).
"""
