"""One page of a query and the total it pages through: the one helper every list endpoint uses."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def paginate(session: Session, query: Select[Any], *order_by: Any, page: int = 1,
             page_size: int = 50) -> tuple[list[Any], int]:
    """Rows ``(page - 1) * page_size`` … of ``query`` in ``order_by`` order, and the count of all rows.

    ``order_by`` must end in a unique column (an id) so pages never overlap or skip a row.
    """
    if page < 1 or page_size < 1:
        raise ValueError("page and page_size count from 1")
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(session.scalars(query.order_by(*order_by).offset((page - 1) * page_size).limit(page_size)))
    return items, total
