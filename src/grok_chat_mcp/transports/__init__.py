"""How clients reach the server: stdio (the default) and streamable HTTP."""
