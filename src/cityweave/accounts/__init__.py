"""Accounts: who can sign in, with which roles and scopes, by password, token or API key."""
