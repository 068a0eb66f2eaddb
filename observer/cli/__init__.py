"""Commands that drive a running observer from outside: the demo history."""
