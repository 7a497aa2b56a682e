"""The web frontend: a form, result and history pages and a JSON API, served by gunicorn."""
