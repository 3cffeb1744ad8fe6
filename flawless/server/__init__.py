"""The flawless server: Twisted shell around a pure routing and alerting core."""
