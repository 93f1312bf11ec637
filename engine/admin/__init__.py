"""The Restate-compatible admin HTTP API; :func:`engine.admin.app.create_admin_app` builds it."""
