"""The dashboard: pages, the JSON API, admin forms and the health check."""
