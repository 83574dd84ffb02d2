// The TypeScript SDK's OAuth client against `--auth oauth`: the first 401, discovery, dynamic
// registration, the consent page (a person pasting their AceDataCloud token, played with fetch),
// the token exchange, then a tool call.
// Usage: node ts_oauth_client.mjs <sdk dir> <MCP URL> <AceDataCloud token>
// Prints one JSON line: what the client saw.
const [sdk, url, pasted] = process.argv.slice(2);
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StreamableHTTPClientTransport } = await import(`${sdk}/dist/esm/client/streamableHttp.js`);
const { UnauthorizedError } = await import(`${sdk}/dist/esm/client/auth.js`);

const redirectUrl = "http://127.0.0.1:3999/callback";
const saved = {};
const seen = { authorizationUrl: null, firstError: null };
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return { client_name: "ts-oauth-check", redirect_uris: [redirectUrl], grant_types: ["authorization_code", "refresh_token"], response_types: ["code"], token_endpoint_auth_method: "none" };
  },
  clientInformation: () => saved.client,
  saveClientInformation: (info) => { saved.client = info; },
  tokens: () => saved.tokens,
  saveTokens: (tokens) => { saved.tokens = tokens; },
  redirectToAuthorization: (authorizationUrl) => { seen.authorizationUrl = authorizationUrl.toString(); },
  saveCodeVerifier: (verifier) => { saved.verifier = verifier; },
  codeVerifier: () => saved.verifier,
};

// What a person does in the browser the client opened: the consent page, token pasted, allow.
async function signIn(authorizationUrl) {
  const toConsent = await fetch(authorizationUrl, { redirect: "manual" });
  const consentUrl = new URL(toConsent.headers.get("location"), authorizationUrl);
  const page = await fetch(consentUrl, { redirect: "manual" });
  const cookie = page.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const html = await page.text();
  const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
  const form = new URLSearchParams({ request: field("request"), csrf: field("csrf"), token: pasted, decision: "allow" });
  const back = await fetch(new URL("/oauth/consent", consentUrl), {
    method: "POST", body: form, redirect: "manual", headers: { cookie, origin: consentUrl.origin },
  });
  return new URL(back.headers.get("location")).searchParams.get("code");
}

let client = new Client({ name: "ts-oauth-check", version: "1.0.0" });
let transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
try {
  await client.connect(transport);
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
  seen.firstError = error.constructor.name;
}
const code = await signIn(seen.authorizationUrl);
await transport.finishAuth(code);
client = new Client({ name: "ts-oauth-check", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
const result = await client.callTool({ name: "grok_chat_completions", arguments: { messages: [{ role: "user", content: "hi" }] } });
await client.close();
console.log(JSON.stringify({ ...seen, registered: Boolean(saved.client?.client_id), tokenType: saved.tokens?.token_type, result }));
