"""Organisations as their people see them: users, roles, members, invitations,
sign-in, admin keys and the management API's operations."""
