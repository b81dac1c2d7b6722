"""Deterministic synthetic audiences for the demo, the tests and the benchmarks.

``python sample_data/generate.py`` rewrites the committed demo audiences under ``sample_data/crm/``
(same seed, same bytes). ``python sample_data/generate.py --rows 1000000 --out /tmp/x.csv`` streams an
N-row benchmark file with the columns of the loyal-customers audience, well over 500k rows/s.

The demo files look like a CRM export: emails with stray case and spaces, E.164 phones, overlapping
members between audiences, and a few deliberately bad rows each (malformed email, phone without
country code, wrong number of fields, no identifier at all) so that rejects show up in the demo.
Everything is invented; no row describes a real person.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent

FIRST_NAMES = (
    "Alice",
    "Bruno",
    "Chloé",
    "David",
    "Emma",
    "François",
    "Greta",
    "Hugo",
    "Inès",
    "Jonas",
    "Karin",
    "Louis",
    "Maya",
    "Noah",
    "Olivia",
    "Pablo",
    "Quentin",
    "Rosa",
    "Sami",
    "Théo",
    "Ulla",
    "Victor",
    "Wiebke",
    "Xavier",
    "Yasmine",
    "Zoé",
    "Léa",
    "Lukas",
    "Sofia",
    "Mateo",
    "Anna",
    "Oscar",
)
LAST_NAMES = (
    "martin",
    "bernard",
    "muller",
    "schmidt",
    "smith",
    "jones",
    "garcia",
    "rossi",
    "dubois",
    "weber",
    "taylor",
    "lopez",
    "bianchi",
    "moreau",
    "fischer",
    "brown",
    "fernandez",
    "ricci",
    "laurent",
    "wagner",
)
DOMAINS = ("example.com", "example.org", "mail.example", "example.fr", "example.de", "example.co.uk")
# Country code, calling code, national mobile prefix and national number length (after the prefix).
COUNTRIES = (
    ("FR", "33", "6", 8),
    ("DE", "49", "151", 8),
    ("GB", "44", "7", 9),
    ("US", "1", "415", 7),
    ("ES", "34", "6", 8),
    ("IT", "39", "3", 9),
)


def _email(rng: random.Random, index: int, first: str) -> str:
    local = f"{first}.{rng.choice(LAST_NAMES)}{index}".lower()
    local = local.translate(str.maketrans("éèçô", "eeco"))
    email = f"{local}@{rng.choice(DOMAINS)}"
    roll = rng.random()
    if roll < 0.05:
        return email.title()  # CRM exports keep whatever case people typed
    if roll < 0.07:
        return f"  {email} "
    return email


def _phone(rng: random.Random, country: tuple[str, str, str, int]) -> str:
    _code, calling, prefix, digits = country
    return f"+{calling}{prefix}{rng.randrange(10 ** (digits - 1), 10**digits)}"


def _maid(rng: random.Random) -> str:
    hexa = f"{rng.getrandbits(128):032x}"
    maid = f"{hexa[:8]}-{hexa[8:12]}-4{hexa[13:16]}-a{hexa[17:20]}-{hexa[20:]}"
    return maid.upper() if rng.random() < 0.4 else maid  # IDFAs upper case, GAIDs lower case


def _write(path: Path, header: list[str], rows: list[list[str]], sidecar: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    path.with_suffix(".json").write_text(
        json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _sprinkle(rng: random.Random, rows: list[list[str]], bad_rows: list[list[str]]) -> None:
    """Put the deliberately bad rows at fixed pseudo-random places, not all at the end."""
    for bad in bad_rows:
        rows.insert(rng.randrange(1, len(rows)), bad)


def generate_demo(folder: Path, seed: int = SEED) -> list[Path]:
    """Write the three demo audiences and their sidecars into ``folder``; returns the CSV paths."""
    rng = random.Random(seed)
    customers = []
    for index in range(3000):
        country = rng.choice(COUNTRIES)
        first = rng.choice(FIRST_NAMES)
        customers.append(
            [_email(rng, index, first), _phone(rng, country), f"C{100000 + index}", first, country[0]]
        )
    customers[17][3] = "Anne, Marie"  # a quoted field with a comma, as real exports have
    loyal = [row[:] for row in customers]
    _sprinkle(
        rng,
        loyal,
        [
            ["jean.dupont.example.com", "+33612345678", "C900001", "Jean", "FR"],  # malformed email
            ["paul.weber@example.de", "01511234567", "C900002", "Paul", "DE"],  # phone without country code
            ["kim.lee@example.com", "+14155550100", "C900003", "Kim", "US", "extra"],  # wrong field count
            ["", "", "", "Nobody", "GB"],  # no identifier at all
        ],
    )

    newsletter = [[row[0], row[3], row[4]] for row in rng.sample(customers, 1800)]
    for index in range(3000, 6200):
        first = rng.choice(FIRST_NAMES)
        newsletter.append([_email(rng, index, first), first, rng.choice(COUNTRIES)[0]])
    rng.shuffle(newsletter)
    _sprinkle(
        rng,
        newsletter,
        [
            ["marie@@example.fr", "Marie", "FR"],
            ["not-an-email", "Otto", "DE"],
            ["lena.schulz@example.de", "Lena"],
            ["", "Ghost", "ES"],
        ],
    )

    app_users = [[_maid(rng), row[2], row[4]] for row in rng.sample(customers, 1200)]
    app_users += [[_maid(rng), "", rng.choice(COUNTRIES)[0]] for _ in range(800)]
    rng.shuffle(app_users)
    _sprinkle(
        rng,
        app_users,
        [
            ["not-a-device-id", "C100042", "FR"],
            ["6D92078A-8246-4BA4-AE5B-76104861E7DC", "C100043"],
            ["", "", "IT"],
        ],
    )

    audiences = [
        (
            "loyal_customers",
            ["email", "phone_e164", "customer_id", "first_name", "country"],
            loyal,
            {
                "name": "Loyal customers",
                "description": "Customers with three or more orders in the last 12 months (CRM export).",
                "tags": ["crm", "customers", "high-value"],
            },
        ),
        (
            "newsletter_subscribers",
            ["email", "first_name", "country"],
            newsletter,
            {
                "name": "Newsletter subscribers",
                "description": "People who opted in to the weekly newsletter, double opt-in confirmed.",
                "tags": ["crm", "email", "marketing-consent"],
            },
        ),
        (
            "app_users",
            ["maid", "customer_id", "country"],
            app_users,
            {
                "name": "Mobile app users",
                "description": (
                    "Devices active in the mobile app in the last 30 days, "
                    "linked to a customer when logged in."
                ),
                "tags": ["app", "mobile"],
            },
        ),
    ]
    paths = []
    for stem, header, rows, sidecar in audiences:
        path = folder / f"{stem}.csv"
        _write(path, header, rows, sidecar)
        paths.append(path)
    return paths


BENCH_HEADER = "email,phone_e164,customer_id,first_name,country\n"
BATCH = 50_000


def generate_rows(out: Path, rows: int, seed: int = SEED) -> None:
    """Stream ``rows`` unique, valid members to ``out`` (loyal-customers columns), batch by batch.

    Random choices are drawn per batch with ``random.choices`` (C speed) and rows are formatted in one
    comprehension; uniqueness comes from the row index, not from the random parts.
    """
    rng = random.Random(seed)
    firsts = [name for name in FIRST_NAMES if name.isascii()]
    # Mobile prefixes padded so that every country takes the same 8-digit suffix.
    phones = {
        code: f"+{calling}{prefix}{'1' * (digits - 8)}" if digits >= 8 else f"+{calling}{prefix[:2]}"
        for code, calling, prefix, digits in COUNTRIES
    }
    # A pool of pre-joined row fragments: one random draw per row, and %-formatting (the fastest
    # formatter in CPython) glues the fragments to the row index that makes every row unique.
    profiles = []
    for _ in range(256):
        first, country = rng.choice(firsts), rng.choice(COUNTRIES)[0]
        profiles.append(
            (
                f"{first.lower()}.{rng.choice(LAST_NAMES)}.",
                f"@{rng.choice(DOMAINS)},{phones[country]}",
                f",{first},{country}\n",
            )
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as handle:
        handle.write(BENCH_HEADER)
        for start in range(0, rows, BATCH):
            count = min(BATCH, rows - start)
            # One random byte per row picks its profile: far cheaper than random.choices.
            picks = [profiles[byte] for byte in rng.randbytes(count)]
            handle.write(
                "".join(
                    [
                        "%s%d%s%08d,C%09d%s" % (local, i, middle, i % 100_000_000, i, tail)  # noqa: UP031 - speed
                        for i, (local, middle, tail) in zip(range(start, start + count), picks, strict=True)
                    ]
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="write an N-row benchmark file instead of the demo set")
    parser.add_argument("--out", type=Path, help="output file for --rows, or folder for the demo set")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.rows is not None:
        if args.out is None:
            parser.error("--rows needs --out")
        generate_rows(args.out, args.rows, args.seed)
        elapsed = time.perf_counter() - started
        print(
            f"wrote {args.rows} rows to {args.out} in {elapsed:.2f}s "
            f"({args.rows / max(elapsed, 1e-9):,.0f} rows/s)",
            file=sys.stderr,
        )
        return 0
    for path in generate_demo(args.out or HERE / "crm", args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
