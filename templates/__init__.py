"""jinja2 templates of the emails and the dashboard pages (installed as flawless.templates)."""
