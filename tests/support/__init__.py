"""Real parts for tests: git repositories, an SMTP server, a flawless server process."""
