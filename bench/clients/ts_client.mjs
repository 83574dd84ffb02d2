// The official TypeScript SDK client timing calls over stdio (as Claude Desktop, Cursor and VS Code
// embed it). Usage: node ts_client.mjs <sdk dir> CALLS LARGE <server command> [args...]
// Lists the tools, makes three warm-up calls, then CALLS instant calls and LARGE calls with a
// ~1 MiB answer; prints one JSON line of round trips in milliseconds. The environment passes through.
const [sdk, calls, large, command, ...args] = process.argv.slice(2);
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/dist/esm/client/stdio.js`);

const client = new Client({ name: "bench", version: "1.0.0" });
await client.connect(new StdioClientTransport({ command, args, env: process.env, stderr: "ignore" }));
await client.listTools();
const times = { ok: [], big1024: [] };
for (const [name, count] of [["ok", 3], ["ok", Number(calls)], ["big1024", Number(large)]]) {
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const result = await client.callTool({
      name: "grok_chat_completions",
      arguments: { model: "grok-4", messages: [{ role: "user", content: "ping" }], user: `scenario:${name}` },
    });
    const elapsed = performance.now() - started;
    if (result.isError) throw new Error(`call failed: ${JSON.stringify(result).slice(0, 300)}`);
    times[name].push(elapsed);
  }
}
times.ok = times.ok.slice(3);
await client.close();
console.log(JSON.stringify(times));
