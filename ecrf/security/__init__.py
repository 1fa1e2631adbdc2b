"""Roles, permissions, password hashing and HTTP hardening."""
