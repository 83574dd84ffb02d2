// The official TypeScript SDK client (it writes a request's id last: {...request, jsonrpc, id})
// sends a call with too much structure, then an ordinary one.
// Usage: node ts_refused.mjs <sdk dir> <server command> [args...]   (env passes through)
// Prints one JSON line: the first call's error and the second call's result.
const [sdk, command, ...args] = process.argv.slice(2);
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/dist/esm/client/stdio.js`);

const client = new Client({ name: "ts-sdk-refused", version: "1.0.0" });
await client.connect(new StdioClientTransport({ command, args, env: process.env, stderr: "ignore" }));
const parts = Array.from({ length: 200000 }, () => ({ type: "text", text: "a" }));
let refused = null;
try {
  await client.callTool(
    { name: "grok_chat_completions", arguments: { messages: [{ role: "user", content: parts }] } },
    undefined,
    { timeout: 60000 },
  );
} catch (error) {
  refused = { code: error.code, message: error.message };
}
const result = await client.callTool({
  name: "grok_chat_completions",
  arguments: { messages: [{ role: "user", content: "hi" }] },
});
await client.close();
console.log(JSON.stringify({ refused, result }));
