"""The HTTP shell around the execution engine (Flask app factory, served by gunicorn)."""
