// The official TypeScript SDK client, as Claude Desktop, Cursor and VS Code embed it: launches the
// server over stdio, lists the tool and calls it streamed with onprogress + resetTimeoutOnProgress.
// Usage: node ts_client.mjs <sdk dir> <server command> [args...]   (env passes through)
// Prints one JSON line: what the client saw.
const [sdk, command, ...args] = process.argv.slice(2);
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/dist/esm/client/stdio.js`);

const client = new Client({ name: "ts-sdk-check", version: "1.0.0" });
await client.connect(new StdioClientTransport({ command, args, env: process.env, stderr: "ignore" }));
const capabilities = client.getServerCapabilities();
const { tools } = await client.listTools();
const progress = [];
const result = await client.callTool(
  {
    name: "grok_chat_completions",
    arguments: { messages: [{ role: "user", content: "hi" }], stream: true, user: "scenario:long10" },
  },
  undefined,
  {
    timeout: 1500, // shorter than the call (about 4 s): only progress keeps it alive
    resetTimeoutOnProgress: true,
    onprogress: (p) => progress.push(p),
  },
);
await client.close();
console.log(JSON.stringify({ capabilities, tools, result, progress }));
