// The Tasks requester of @modelcontextprotocol/ext-tasks on the 2026-07-28 TypeScript client
// (@modelcontextprotocol/client) runs one call of our tool to its outcome, then asks tasks/get
// for the finished task once more.
// Usage: node ts_tasks.mjs <node_modules> stdio <command> <arguments JSON>
//        node ts_tasks.mjs <node_modules> http <mcp url> <arguments JSON> <token>
// Prints one JSON line: how the call ran (kind, the task's statuses), its result, the second tasks/get.
import { pathToFileURL } from "node:url";

const [modules, transportKind, target, argumentsJson, token] = process.argv.slice(2);
const load = (path) => import(pathToFileURL(`${modules}/${path}`).href);
const { Client, StreamableHTTPClientTransport } = await load("@modelcontextprotocol/client/dist/index.mjs");
const { StdioClientTransport } = await load("@modelcontextprotocol/client/dist/stdio.mjs");
const { createTaskSessionFromClient } = await load("@modelcontextprotocol/ext-tasks/dist/client/index.js");

const TASKS = "io.modelcontextprotocol/tasks";
const clientInfo = { name: "ext-tasks-requester", version: "0.2.2" };
const transport =
  transportKind === "stdio"
    ? new StdioClientTransport({ command: target, env: process.env, stderr: "inherit" })
    : new StreamableHTTPClientTransport(new URL(target), {
        requestInit: { headers: { Authorization: `Bearer ${token}` } },
      });
const client = new Client(clientInfo, {
  capabilities: { extensions: { [TASKS]: {} } },
  versionNegotiation: { mode: { pin: "2026-07-28" } },
});
await client.connect(transport);

// The requester sends task traffic through the host's own request path ("rawDispatch"): requests
// with ids of ours on the client's transport, their responses taken off before the client sees them.
const pending = new Map();
let nextId = 0;
const deliver = transport.onmessage;
transport.onmessage = (message, extra) => {
  const waiter = pending.get(message.id);
  if (waiter !== undefined && ("result" in message || "error" in message)) {
    pending.delete(message.id);
    waiter(message);
  } else {
    deliver(message, extra);
  }
};
async function rawDispatch(request) {
  const id = `tasks-${++nextId}`;
  const answered = new Promise((resolve) => pending.set(id, resolve));
  await transport.send({ ...request, jsonrpc: "2.0", id });
  const response = await answered;
  return "error" in response
    ? { kind: "error", error: response.error }
    : { kind: "result", result: response.result };
}

const framing = {
  protocolVersion: client.getNegotiatedProtocolVersion(),
  clientInfo,
  clientCapabilities: { extensions: { [TASKS]: {} } },
};
const seen = {
  era: client.getProtocolEra(),
  advertised: client.getServerCapabilities()?.extensions?.[TASKS] !== undefined,
  statuses: [],
};
const session = createTaskSessionFromClient(client, {
  endpointId: "grok-chat-mcp",
  rawDispatch,
  v2RequestFraming: framing,
});
try {
  const started = Date.now();
  const execution = await session.callTool("grok_chat_completions", JSON.parse(argumentsJson));
  seen.kind = execution.kind;
  seen.taskId = execution.handle?.taskId;
  const { outcome } = await execution.settle({
    onEvent: (event) => {
      if (event.type === "task") seen.statuses.push(event.task.status);
    },
  });
  seen.seconds = (Date.now() - started) / 1000;
  seen.outcome = outcome.status;
  seen.result = outcome.result;
  if (outcome.status === "failed") seen.error = String(outcome.error);
  if (seen.taskId !== undefined) {
    const again = await rawDispatch({
      method: "tasks/get",
      params: {
        taskId: seen.taskId,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": framing.protocolVersion,
          "io.modelcontextprotocol/clientInfo": clientInfo,
          "io.modelcontextprotocol/clientCapabilities": framing.clientCapabilities,
        },
      },
    });
    seen.again = again.kind === "result" ? again.result : { error: again.error };
  }
} finally {
  await session.close();
  await client.close();
}
console.log(JSON.stringify(seen));
