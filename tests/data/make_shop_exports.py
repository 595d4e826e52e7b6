"""Write the synthetic shop exports of tests/data and the same lines in the normalized layout.

Invented data (example.com addresses, made-up names and products), laid out as the documented
exports: Shopify's orders CSV (Orders > Export: one row per line item, order fields on an
order's first row, "Created at" with the shop's UTC offset) and WooCommerce's Customer / Order /
Coupon Export in its "Default - One Row per Item" format. The normalized files are computed
here from the same orders, independently of the importer, so the tests can compare the two.

Run from the repository root: python tests/data/make_shop_exports.py
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).parent
SHOP_TZ = ZoneInfo("Europe/Berlin")  # +0100 in winter, +0200 in summer
NORMALIZED = ["customer_id", "order_id", "ordered_at", "amount", "category", "country"]
PRODUCTS = [
    ("Linen Apron", "APR-1", 24.0),
    ("Walnut Board", "WAL-2", 39.5),
    ("Enamel Mug", "MUG-3", 12.0),
    ("Herb Seeds", "SEED-4", 4.75),
    ("Wool Throw", "THR-5", 89.0),
    ("Oak Spoon Set", "SPN-6", 18.25),
]
PEOPLE = [
    ("Ada Example", "ada@example.com", "DE"),
    ("Ben Sample", "ben.sample@example.org", "AT"),
    ("Cleo Placeholder", "cleo@example.com", "DE"),
    ("Dan Fictional", "dan@example.net", "CH"),
    ("Eve Invented", "eve@example.com", "FR"),
    ("Finn Madeup", "finn@example.org", "DE"),
    ("Gus Testperson", "gus@example.com", "NL"),
    ("Hana Dummy", "hana@example.net", "DE"),
]


@dataclass
class Item:
    name: str
    sku: str
    qty: int
    price: float
    discount: float = 0.0
    refunded: float = 0.0

    @property
    def total(self) -> float:
        return round(self.qty * self.price - self.discount, 2)


@dataclass
class Order:
    number: int
    person: int | None  # None: a walk-in without an e-mail address
    created: datetime  # the shop's local time
    items: list[Item]
    status: str  # paid / partially_refunded / refunded / pending / voided
    email_case: str = "lower"


def make_orders(seed: int = 7) -> list[Order]:
    rng = random.Random(seed)
    start = datetime(2024, 1, 8, 9, 0)
    orders: list[Order] = []
    for n in range(40):
        created = start + timedelta(days=rng.randint(0, 300), minutes=rng.randint(0, 720))
        person: int | None = rng.randrange(len(PEOPLE)) if n % 13 != 5 else None
        items = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            name, sku, price = rng.choice(PRODUCTS)
            qty = rng.choice([1, 1, 2, 3])
            discount = round(qty * price * 0.1, 2) if rng.random() < 0.2 else 0.0
            items.append(Item(name, sku, qty, price, discount))
        status = "paid"
        if n % 9 == 4:
            status = "partially_refunded"
            items[0].refunded = round(items[0].total / 2, 2)
        elif n % 11 == 7:
            status = "refunded"
            for item in items:
                item.refunded = item.total
        elif n % 17 == 3:
            status = "voided"
        elif n == 20:
            status = "pending"
        case = "upper" if n % 7 == 2 else "lower"
        orders.append(Order(1001 + n, person, created, items, status, case))
    # one order just after the change to summer time, one just before midnight
    orders[1].created = datetime(2024, 3, 31, 3, 15)
    orders[2].created = datetime(2024, 10, 26, 23, 50)
    return sorted(orders, key=lambda o: o.number)


def email(order: Order) -> str:
    if order.person is None:
        return ""
    address = PEOPLE[order.person][1]
    return address.upper() if order.email_case == "upper" else address


def money(x: float) -> str:
    return f"{x:.2f}"


SHOPIFY_HEADER = (
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,"
    "Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,"
    "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,"
    "Lineitem sku,Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,"
    "Billing Name,Billing Street,Billing Address1,Billing Address2,Billing Company,"
    "Billing City,Billing Zip,Billing Province,Billing Country,Billing Phone,Shipping Name,"
    "Shipping Street,Shipping Address1,Shipping Address2,Shipping Company,Shipping City,"
    "Shipping Zip,Shipping Province,Shipping Country,Shipping Phone,Notes,Note Attributes,"
    "Cancelled at,Payment Method,Payment Reference,Refunded Amount,Vendor,Outstanding Balance,"
    "Employee,Location,Device ID,Id,Tags,Risk Level,Source,Lineitem discount,Tax 1 Name,"
    "Tax 1 Value,Tax 2 Name,Tax 2 Value,Tax 3 Name,Tax 3 Value,Tax 4 Name,Tax 4 Value,"
    "Tax 5 Name,Tax 5 Value,Phone,Receipt Number,Duties,Billing Province Name,"
    "Shipping Province Name,Payment ID,Payment Terms Name,Next Payment Due At,"
    "Payment References"
).split(",")


def shopify_rows(orders: list[Order]) -> list[dict[str, str]]:
    rows = []
    for o in orders:
        local = o.created.replace(tzinfo=SHOP_TZ)
        created = local.strftime("%Y-%m-%d %H:%M:%S %z")
        person = PEOPLE[o.person] if o.person is not None else ("", "", "DE")
        subtotal = sum(i.total for i in o.items)
        refunded = sum(i.refunded for i in o.items)
        for k, item in enumerate(o.items):
            row = dict.fromkeys(SHOPIFY_HEADER, "")
            row.update(
                {
                    "Name": f"#{o.number}",
                    "Email": email(o),
                    "Created at": created,
                    "Lineitem quantity": str(item.qty),
                    "Lineitem name": item.name,
                    "Lineitem price": money(item.price),
                    "Lineitem sku": item.sku,
                    "Lineitem requires shipping": "true",
                    "Lineitem taxable": "true",
                    "Lineitem fulfillment status": "fulfilled",
                    "Lineitem discount": money(item.discount),
                    "Vendor": "Example Goods",
                }
            )
            if k == 0:  # order fields: on the order's first row only
                row.update(
                    {
                        "Financial Status": o.status,
                        "Paid at": created if o.status not in ("pending", "voided") else "",
                        "Fulfillment Status": "fulfilled",
                        "Accepts Marketing": "no",
                        "Currency": "EUR",
                        "Subtotal": money(subtotal),
                        "Shipping": "4.90",
                        "Taxes": money(round(subtotal * 0.19 / 1.19, 2)),
                        "Total": money(subtotal + 4.90),
                        "Discount Amount": money(sum(i.discount for i in o.items)),
                        "Shipping Method": "Standard",
                        "Billing Name": person[0],
                        "Billing City": "Exampletown",
                        "Billing Zip": "00000",
                        "Billing Country": person[2],
                        "Shipping Country": person[2],
                        "Cancelled at": created if o.status == "voided" else "",
                        "Payment Method": "manual",
                        "Refunded Amount": money(refunded),
                        "Outstanding Balance": "0.00",
                        "Id": str(5_000_000_000 + o.number),
                        "Risk Level": "Low",
                        "Source": "web",
                        "Tax 1 Name": "VAT 19%",
                        "Tax 1 Value": money(round(subtotal * 0.19 / 1.19, 2)),
                    }
                )
            rows.append(row)
    return rows


WOO_HEADER = (
    "order_id,order_number,date,status,shipping_total,shipping_tax_total,fee_total,"
    "fee_tax_total,tax_total,discount_total,order_total,refunded_total,order_currency,"
    "payment_method,shipping_method,customer_id,billing_first_name,billing_last_name,"
    "billing_company,billing_email,billing_phone,billing_address_1,billing_address_2,"
    "billing_postcode,billing_city,billing_state,billing_country,shipping_first_name,"
    "shipping_last_name,shipping_address_1,shipping_address_2,shipping_postcode,shipping_city,"
    "shipping_state,shipping_country,shipping_company,customer_note,item_name,item_sku,"
    "item_quantity,item_tax,item_total,item_refunded,item_refunded_qty,item_meta,"
    "shipping_items,fee_items,tax_items,coupon_items,order_notes,download_permissions_granted"
).split(",")
WOO_STATUS = {
    "paid": "completed",
    "partially_refunded": "completed",
    "refunded": "refunded",
    "pending": "pending",
    "voided": "cancelled",
}


def woo_rows(orders: list[Order]) -> list[dict[str, str]]:
    rows = []
    for o in orders:
        # Registered customers have a user id; every third one checks out as a guest (0).
        user = "0" if o.person is None or o.number % 3 == 0 else str(100 + o.person)
        person = PEOPLE[o.person] if o.person is not None else ("Walk In", "", "DE")
        first, _, last = person[0].partition(" ")
        total = sum(i.total for i in o.items)
        for item in o.items:
            row = dict.fromkeys(WOO_HEADER, "")
            row.update(
                {
                    "order_id": str(7000 + o.number),
                    "order_number": str(o.number),
                    "date": o.created.strftime("%Y-%m-%d %H:%M:%S"),
                    "status": WOO_STATUS[o.status],
                    "shipping_total": "4.90",
                    "tax_total": money(round(total * 0.19, 2)),
                    "discount_total": money(sum(i.discount for i in o.items)),
                    "order_total": money(total + 4.90),
                    "refunded_total": money(sum(i.refunded for i in o.items)),
                    "order_currency": "EUR",
                    "payment_method": "bacs",
                    "shipping_method": "Flat rate",
                    "customer_id": user,
                    "billing_first_name": first,
                    "billing_last_name": last,
                    "billing_email": email(o),
                    "billing_city": "Exampletown",
                    "billing_postcode": "00000",
                    "billing_country": person[2],
                    "shipping_country": person[2],
                    "item_name": item.name,
                    "item_sku": item.sku,
                    "item_quantity": str(item.qty),
                    "item_tax": money(round(item.total * 0.19, 2)),
                    "item_total": money(item.total),
                    "item_refunded": money(item.refunded),
                    "item_refunded_qty": "0",
                    "shipping_items": "method:Flat rate|total:4.90",
                    "download_permissions_granted": "1",
                }
            )
            rows.append(row)
    return rows


def normalized(orders: list[Order], shop: str) -> list[dict[str, str]]:
    """The lines the importer should make: unpaid orders left out, a refund line per refund,
    the e-mail address (lower case) as customer id (WooCommerce: the user id of a customer
    without one), the local time as written."""
    lines = []
    for o in orders:
        if o.status in ("pending", "voided"):
            continue
        customer = email(o).lower()
        order_id = f"#{o.number}" if shop == "shopify" else str(o.number)
        at = o.created.strftime("%Y-%m-%dT%H:%M:%S")
        country = PEOPLE[o.person][2] if o.person is not None else "DE"
        for item in o.items:
            lines.append([customer, order_id, at, money(item.total), "", country])
        refunds = [i.refunded for i in o.items if i.refunded]
        if shop == "shopify" and refunds:  # Shopify: one order-level refunded amount
            lines.append([customer, f"{order_id} refund", at, money(-sum(refunds)), "", country])
        elif shop == "woocommerce":
            for r in refunds:
                lines.append([customer, f"{order_id} refund", at, money(-r), "", country])
    return [dict(zip(NORMALIZED, line, strict=True)) for line in lines]


def write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    orders = make_orders()
    write(HERE / "shopify_orders_export.csv", SHOPIFY_HEADER, shopify_rows(orders))
    write(HERE / "shopify_orders_export.normalized.csv", NORMALIZED, normalized(orders, "shopify"))
    write(HERE / "woocommerce_orders_export.csv", WOO_HEADER, woo_rows(orders))
    write(
        HERE / "woocommerce_orders_export.normalized.csv",
        NORMALIZED,
        normalized(orders, "woocommerce"),
    )


if __name__ == "__main__":
    main()
