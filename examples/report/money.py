"""How amounts are shown in reports."""


def dollars(amount: float) -> str:
    """An amount as dollars with cents, e.g. $1,234.50."""
    return f"${amount:,.2f}"
