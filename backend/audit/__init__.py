"""The auditor's command-line toolkit: read the Firestore ledger, reconcile it with Alpaca.

Run ``python -m backend.audit --help``. Every command only reads: nothing here writes to
Firestore or sends anything but GET requests to the broker.
"""
