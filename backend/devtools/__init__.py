"""Developer tooling: local Firestore emulator / Postgres helpers and the `make run` entry point."""
