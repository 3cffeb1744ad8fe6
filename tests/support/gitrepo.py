"""Build real git repositories with several authors in a temporary directory."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

ALICE = ("Alice Liddell", "alice@example.com")
BOB = ("Bob Builder", "bob@example.org")
CAROL = ("Carol Danvers", "carol@example.net")


@dataclass
class GitRepo:
    """A real repository on disk; ``commit`` writes files as one author."""

    path: Path

    def git(self, *args: str, env: Optional[Mapping[str, str]] = None) -> str:
        """Run git in the repository and return its standard output."""
        full_env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(self.path))
        full_env.update(env or {})
        result = subprocess.run(["git", *args], cwd=self.path, env=full_env, check=True,
                                capture_output=True, text=True)
        return result.stdout

    def commit(self, author: tuple[str, str], files: Mapping[str, str], message: str,
               date: str = "2026-11-02T10:00:00+00:00") -> str:
        """Write ``files`` (path -> full text) as ``author`` and return the new commit's sha."""
        for relative, text in files.items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.git("add", relative)
        name, email = author
        self.git("commit", "-q", "-m", message, env={
            "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": date,
        })
        return self.head()

    def head(self) -> str:
        """The sha of HEAD."""
        return self.git("rev-parse", "HEAD").strip()


def init_repo(path: Path) -> GitRepo:
    """Create an empty repository at ``path`` on branch main."""
    path.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(path)
    repo.git("init", "-q", "-b", "main")
    return repo


CART_V1 = '''\
class Cart:
    def __init__(self):
        self.items = []

    def add_item(self, name, price):
        if price < 0:
            raise ValueError("negative price")
        self.items.append((name, price))

    def total(self):
        return sum(price for _, price in self.items)
'''

CART_V2 = CART_V1 + '''
    def average(self):
        return self.total() / len(self.items)
'''


PRICING = '''\
from shop.cart import Cart


def checkout(prices):
    cart = Cart()
    for index, price in enumerate(prices):
        cart.add_item("item%d" % index, price)
    return cart.total()


def parse_price(text):
    return int(text)
'''


def shop_repo(path: Path) -> GitRepo:
    """A small shop application: Alice wrote the cart, Bob wrote pricing and Cart.average."""
    repo = init_repo(path)
    repo.commit(ALICE, {"shop/__init__.py": "", "shop/cart.py": CART_V1}, "Add the cart",
                date="2026-11-02T10:00:00+00:00")
    repo.commit(BOB, {"shop/pricing.py": PRICING}, "Add pricing",
                date="2026-11-03T10:00:00+00:00")
    repo.commit(BOB, {"shop/cart.py": CART_V2}, "Add Cart.average",
                date="2026-11-04T10:00:00+00:00")
    return repo


def average_report(filename: str = "/srv/app/shop/cart.py") -> dict:
    """A wire report of Cart.average dividing by zero: Bob's line 14 of shop/cart.py."""
    return {"exception_type": "builtins.ZeroDivisionError",
            "exception_message": "division by zero",
            "traceback": [{"filename": filename, "line_number": 14, "function_name": "average",
                           "text": "return self.total() / len(self.items)"}]}
