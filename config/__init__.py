"""The example flawless.cfg and rule files, installed so `flawless configure` can copy them."""
