"""Query functions, one module per aggregate: typed functions over a Session that the caller's
transaction composes; the row -> record mappers live beside them."""
