"""Monthly sales report: python report.py --month 3"""

import argparse

from money import dollars
from sales import load_sales, of_month, total

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def summary(sales, month):
    chosen = of_month(sales, month)
    return f"{MONTHS[month - 1]}: {len(chosen)} sales, total {dollars(total(chosen))}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--month", type=int, required=True)
    args = parser.parse_args()
    print(summary(load_sales("data/sales.csv"), args.month))


if __name__ == "__main__":
    main()
