"""An MCP server built with the official MCP Python SDK (PyPI `mcp`): `MCPServer` (FastMCP,
renamed in mcp 2) with the SDK's built-in OAuth routes: RFC 9728 and RFC 8414 metadata,
dynamic client registration, /authorize, /token with PKCE, refresh rotation and revocation.
The provider below only stores state in memory and approves every authorization at once (the
scripted browser is the user). Usage: oauth_server.py PORT
"""

import secrets
import sys
import time

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthToken

PORT = int(sys.argv[1])
BASE = f"http://127.0.0.1:{PORT}"
TTL = 3600


class Provider:
    def __init__(self):
        self.clients, self.codes, self.access, self.refresh = {}, {}, {}, {}

    async def get_client(self, client_id):
        return self.clients.get(client_id)

    async def register_client(self, client_info):
        self.clients[client_info.client_id] = client_info

    async def authorize(self, client, params):
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or [],
            expires_at=time.time() + 300,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(self, client, authorization_code):
        c = self.codes.get(authorization_code)
        return c if c and c.client_id == client.client_id else None

    def _issue(self, client_id, scopes, resource):
        at, rt = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access[at] = AccessToken(
            token=at, client_id=client_id, scopes=scopes, expires_at=int(time.time()) + TTL, resource=resource
        )
        self.refresh[rt] = RefreshToken(token=rt, client_id=client_id, scopes=scopes, resource=resource)
        return OAuthToken(access_token=at, expires_in=TTL, refresh_token=rt, scope=" ".join(scopes) or None)

    async def exchange_authorization_code(self, client, authorization_code):
        self.codes.pop(authorization_code.code, None)
        return self._issue(client.client_id, authorization_code.scopes, authorization_code.resource)

    async def load_refresh_token(self, client, refresh_token):
        t = self.refresh.get(refresh_token)
        return t if t and t.client_id == client.client_id else None

    async def exchange_refresh_token(self, client, refresh_token, scopes):
        self.refresh.pop(refresh_token.token, None)
        return self._issue(client.client_id, scopes or refresh_token.scopes, refresh_token.resource)

    async def load_access_token(self, token):
        t = self.access.get(token)
        if t is None or (t.expires_at and t.expires_at < time.time()):
            return None
        return t

    async def revoke_token(self, token):
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)
        print(f"REVOKED {type(token).__name__}", flush=True)


mcp = MCPServer(
    "python-sdk-oauth",
    version="9.8.7",
    auth_server_provider=Provider(),
    auth=AuthSettings(
        issuer_url=BASE,
        resource_server_url=f"{BASE}/mcp",
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=["user"], default_scopes=["user"]
        ),
        revocation_options=RevocationOptions(enabled=True),
        required_scopes=["user"],
        validate_token_resource=True,
    ),
)


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text."""
    return text


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


print("READY", flush=True)
mcp.run("streamable-http", host="127.0.0.1", port=PORT)
