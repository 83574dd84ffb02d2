// The official TypeScript SDK client over streamable HTTP cancels a streamed call once its first
// progress arrives (an AbortSignal, as hosts do when the user presses stop).
// Usage: node ts_http_cancel.mjs <sdk dir> <mcp url> <token>. Prints one JSON line.
const [sdk, url, token] = process.argv.slice(2);
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StreamableHTTPClientTransport } = await import(`${sdk}/dist/esm/client/streamableHttp.js`);

const client = new Client({ name: "ts-sdk-cancel", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
await client.connect(transport);
const controller = new AbortController();
let outcome = "completed";
try {
  await client.callTool(
    {
      name: "grok_chat_completions",
      arguments: { messages: [{ role: "user", content: "hi" }], stream: true, user: "scenario:long50" },
    },
    undefined,
    { signal: controller.signal, onprogress: () => controller.abort("stopped by the user") },
  );
} catch (error) {
  outcome = `rejected: ${error}`;
}
await client.close();
console.log(JSON.stringify({ outcome }));
