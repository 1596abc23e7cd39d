# The compiled module's interface (trio_scrape/model/_native.pyx; built in wheels only).
from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["CACHE_SIZE", "first_text", "row_texts"]

CACHE_SIZE: int

def first_text(node: LexborNode | LexborHTMLParser, query: str) -> str | None: ...
def row_texts(parent: LexborNode, index: dict[int, int], query: str) -> list[str | None] | None: ...
