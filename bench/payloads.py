"""Realistic reports in the wire schema (stdlib only: also imported inside the peer's venv)."""

from __future__ import annotations

from typing import Any

APP_ROOT = "/srv/app"
FRAME_FUNCTIONS = ("handle", "dispatch", "view", "load_cart", "price_items", "apply_rules",
                   "discount_for", "lookup_rate", "convert", "parse_amount")


def frame_locals(depth: int, serial: int) -> dict[str, str]:
    """Locals as a client would send them: name -> repr, a handful per frame."""
    return {"self": f"<shop.cart.Cart object at 0x7f3a{depth:02d}{serial % 9999:04d}>",
            "item_id": repr(1000 + serial), "qty": repr(depth + 1),
            "rates": repr({"EUR": 1.08, "GBP": 1.27}), "label": repr(f"line {depth}")}


def make_report(serial: int, distinct_errors: int, files: int = 10,
                hostname: str = "web-3") -> dict[str, Any]:
    """A 10-frame report with locals; ``serial % distinct_errors`` picks which error it is."""
    error = serial % distinct_errors
    traceback = []
    for depth, function in enumerate(FRAME_FUNCTIONS):
        file_number = (error + depth) % files
        line = 10 + depth * 7 + (error // files) % 2000
        traceback.append({
            "filename": f"{APP_ROOT}/shop/module_{file_number:04d}.py",
            "line_number": line,
            "function_name": function,
            # distinct lines have distinct text: the server tells errors apart by it
            "text": f"value_{line} = step_{depth}(item_id, qty)",
            "frame_locals": frame_locals(depth, serial),
        })
    return {"exception_type": "builtins.ValueError",
            "exception_message": f"invalid literal for int() with base 10: 'x{serial % 97}'",
            "traceback": traceback, "hostname": hostname, "error_count": 1,
            "additional_info": f"GET /cart?id={serial}"}


def rpc_call(report: dict[str, Any], request_id: int) -> dict[str, Any]:
    """A JSON-RPC 2.0 ``record_error`` call carrying ``report``."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "record_error",
            "params": {"report": report}}
