"""Allow ``python -m grok_chat_mcp``."""

from grok_chat_mcp.cli import main

if __name__ == "__main__":
    main()
