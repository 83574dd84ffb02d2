"""The upstream side: AceDataCloud's chat-completions endpoint, over one pooled HTTP client."""
