"""The report's line for a month: its count, its total and its average sale."""

from report import summary
from sales import load_sales


def test_march_has_count_total_and_average():
    sales = load_sales("data/sales.csv")
    assert summary(sales, 3) == "March: 3 sales, total $60.00, average $20.00"


def test_a_month_without_sales_has_no_average():
    assert summary(load_sales("data/sales.csv"), 1) == "January: 0 sales, total $0.00, average -"
