"""PURE: the decisions of the server as functions of plain values; standard library only."""
