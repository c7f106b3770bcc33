"""Sales records: read from the shop's CSV export and added up."""

import csv
from dataclasses import dataclass


@dataclass(frozen=True)
class Sale:
    """One sale: the month it happened in (1-12) and its amount in dollars."""

    month: int
    amount: float


def load_sales(path: str) -> list[Sale]:
    """Read the CSV file (columns month, amount) into sales."""
    with open(path, newline="", encoding="utf-8") as f:
        return [Sale(int(row["month"]), float(row["amount"])) for row in csv.DictReader(f)]


def of_month(sales: list[Sale], month: int) -> list[Sale]:
    """The sales of one month."""
    return [s for s in sales if s.month == month]


def total(sales: list[Sale]) -> float:
    """The sum of the amounts."""
    return sum(s.amount for s in sales)
