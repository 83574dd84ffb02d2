"""grok-chat-mcp: an MCP server for Grok chat completions via AceDataCloud."""

__version__ = "0.1.0"
